//! The openraft state machine: an adapter from committed log entries to the MVCC store.
//!
//! Entries arrive in batches; each batch is applied in ONE MVCC write transaction together with
//! the applied log id and membership, so the store and its Raft position never disagree. Commits
//! are made durable at most every [`SYNC_INTERVAL`]: the Raft log is the source of truth, and
//! after a crash openraft re-applies the entries above the durable `applied` position. Before a
//! snapshot is taken (which lets openraft purge the log) the store is synced, so the log is never
//! purged past what the store holds durably.
//!
//! Responses are sent only after the batch commits, so a client that hears back and then reads
//! sees its own write. Lease grants, revocations and checkpoints of a committed batch are
//! reported to the [`ApplyObserver`] (the lessor) before any response is sent; puts attaching a
//! lease are checked against the store's `leases` table. This module never interprets etcd requests itself (`synod_mvcc` does) and
//! knows nothing of gRPC.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use prost::Message;
use synod_mvcc::{MvccError, MvccStore, ReadView};
use synod_proto::peerpb::{internal_request::Request, InternalResponse, MemberAttributes};

use super::observer::{ApplyObserver, LeaseChange};
use super::storage_codec::{decode, encode, io_err};
use super::typ::{LogId, Snapshot, SnapshotMeta, StoredMembership};
use super::{Applied, RejectKind, SnapshotData, TypeConfig};

/// How long applied batches may stay non-durable in the store. The Raft log is the write-ahead
/// log: a crash loses nothing, it only means re-applying the log above the last durable commit
/// (and a snapshot, which lets openraft purge the log, always syncs first). A durable redb
/// commit has to process every page freed since the previous one, which stalls the apply path
/// for milliseconds; measured on 2 cores at 50 clients, syncing every second put that stall in
/// p99 (7.0 ms vs 5.0 ms without). Syncing rarely keeps it out of the everyday tail.
const SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How often the write-back thread pushes the store file's dirty pages to disk.
const WRITEBACK_INTERVAL: Duration = Duration::from_millis(50);

/// Keeps the store file's dirty pages flowing to disk between durable commits.
///
/// Purely an optimisation, never relied on for durability: without it a durable commit would
/// have to write a whole `SYNC_INTERVAL` of pages in one fsync, stalling the apply path (and
/// showing up in tail latency). It stops when the state machine is dropped.
fn spawn_writeback(path: std::path::PathBuf, alive: std::sync::Weak<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("state-writeback".into())
        .spawn(move || {
            let Ok(file) = std::fs::File::open(&path) else {
                return;
            };
            while alive.upgrade().is_some() {
                std::thread::sleep(WRITEBACK_INTERVAL);
                if let Err(e) = file.sync_data() {
                    tracing::debug!(error = %e, "state write-back failed");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no state write-back thread; durable commits will take longer");
    }
}

const META_APPLIED: &str = "raft/applied";
const META_MEMBERSHIP: &str = "raft/membership";
/// Prefix of the meta keys holding each member's published attributes.
pub const META_MEMBER_PREFIX: &str = "member/";

/// Maps a refusal of the MVCC layer to the replicated answer, or to a fatal storage error.
fn reject(e: MvccError) -> io::Result<Applied> {
    let kind = match e {
        MvccError::Compacted => RejectKind::Compacted,
        MvccError::FutureRevision => RejectKind::FutureRevision,
        MvccError::KeyNotFound => RejectKind::KeyNotFound,
        MvccError::LeaseNotFound => RejectKind::LeaseNotFound,
        MvccError::LeaseExists => RejectKind::LeaseExists,
        MvccError::Storage(_) | MvccError::Corrupt(_) | MvccError::UnsupportedLayout(_) => {
            return Err(io_err(e))
        }
        #[allow(unreachable_patterns)]
        other => return Ok(Applied::Rejected(RejectKind::Invalid, other.to_string())),
    };
    Ok(Applied::Rejected(kind, e.to_string()))
}

struct Shared {
    /// Whether a snapshot was built or installed since start (its metadata). Its bytes are not
    /// kept: they are the whole store, as large as the data (a resident copy of it made the
    /// member's memory grow with the store). A snapshot asked for later is taken afresh.
    current: Mutex<Option<SnapshotMeta>>,
    last_sync: Mutex<Instant>,
}

/// The state machine handed to openraft; cheap to clone (it is also the snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    store: MvccStore,
    shared: Arc<Shared>,
    observers: Vec<Arc<dyn ApplyObserver>>,
}

impl StateMachine {
    pub fn new(store: MvccStore) -> Self {
        let shared = Arc::new(Shared {
            current: Mutex::new(None),
            last_sync: Mutex::new(Instant::now()),
        });
        spawn_writeback(store.path().to_path_buf(), Arc::downgrade(&shared));
        StateMachine {
            store,
            shared,
            observers: Vec::new(),
        }
    }

    /// Reports what is applied (lease changes, events, snapshot installs) to `observers`,
    /// in their order.
    pub fn with_observers(mut self, observers: Vec<Arc<dyn ApplyObserver>>) -> Self {
        self.observers = observers;
        self
    }

    fn due_for_sync(&self) -> bool {
        let mut last = self
            .shared
            .last_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= SYNC_INTERVAL {
            *last = Instant::now();
            true
        } else {
            false
        }
    }

    fn read_position(&self) -> io::Result<(Option<LogId>, StoredMembership)> {
        position(&self.store.read().map_err(io_err)?)
    }
}

impl StateMachine {
    /// Applies a batch of committed entries in one MVCC write transaction and returns the
    /// answers to send once it is committed.
    #[allow(clippy::type_complexity)]
    fn apply_batch(&self, entries: Vec<EntryResponder<TypeConfig>>) -> io::Result<BatchOutcome> {
        let mut batch = self.store.write().map_err(io_err)?;
        let with_prev_kv = self.observers.iter().any(|o| o.wants_prev_kv());
        batch.set_prev_kv_in_events(with_prev_kv);
        let mut replies = Vec::new();
        let mut lease_changes = Vec::new();
        let mut last = None;
        for (entry, responder) in entries {
            let log_id = entry.log_id();
            let answer = match &entry.payload {
                EntryPayload::Blank => Applied::done(InternalResponse::default()),
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(log_id), m.clone());
                    batch
                        .set_meta(META_MEMBERSHIP, &encode(&stored)?)
                        .map_err(io_err)?;
                    Applied::done(InternalResponse::default())
                }
                EntryPayload::Normal(cmd) => match &cmd.0.request {
                    Some(Request::Publish(attrs)) => {
                        let key = format!("{META_MEMBER_PREFIX}{:016x}", attrs.member_id);
                        batch
                            .set_meta(&key, &attrs.encode_to_vec())
                            .map_err(io_err)?;
                        Applied::done(InternalResponse::default())
                    }
                    request => match batch.apply_with_lease_table(&cmd.0) {
                        Ok(resp) => {
                            match request {
                                Some(Request::LeaseGrant(g)) => {
                                    lease_changes.push(LeaseChange::Granted {
                                        id: g.id,
                                        ttl: g.ttl,
                                    })
                                }
                                Some(Request::LeaseRevoke(r)) => {
                                    lease_changes.push(LeaseChange::Revoked { id: r.id })
                                }
                                Some(Request::LeaseCheckpoint(c)) => {
                                    // The store ignored unknown ids; so does the report, or
                                    // the lessor would keep estimates for revoked leases.
                                    for cp in &c.checkpoints {
                                        if batch.lease_exists(cp.id).map_err(io_err)? {
                                            lease_changes.push(LeaseChange::Checkpointed {
                                                id: cp.id,
                                                remaining_ttl: cp.remaining_ttl,
                                            });
                                        }
                                    }
                                }
                                _ => {}
                            }
                            Applied::done(resp)
                        }
                        Err(e) => reject(e)?,
                    },
                },
            };
            last = Some(log_id);
            if let Some(r) = responder {
                replies.push((r, answer));
            }
        }
        batch
            .set_meta(META_APPLIED, &encode(&last)?)
            .map_err(io_err)?;
        let revision = batch.current_revision();
        let events = if self.observers.is_empty() {
            Vec::new()
        } else {
            batch.take_events()
        };
        batch.commit(self.due_for_sync()).map_err(io_err)?;
        Ok(BatchOutcome {
            replies,
            lease_changes,
            revision,
            events,
            with_prev_kv,
        })
    }
}

/// What one applied batch produced: the answers to send and what to tell the observers.
struct BatchOutcome {
    replies: Vec<(ApplyResponder<TypeConfig>, Applied)>,
    lease_changes: Vec<LeaseChange>,
    revision: i64,
    events: Vec<synod_proto::mvccpb::Event>,
    /// Whether the events carry `prev_kv`.
    with_prev_kv: bool,
}

/// The applied log id and membership recorded in a view of the store.
fn position(view: &ReadView) -> io::Result<(Option<LogId>, StoredMembership)> {
    let applied = view
        .meta(META_APPLIED)
        .map_err(io_err)?
        .map(|b| decode(&b))
        .transpose()?
        .flatten();
    let membership = view
        .meta(META_MEMBERSHIP)
        .map_err(io_err)?
        .map(|b| decode(&b))
        .transpose()?
        .unwrap_or_default();
    Ok((applied, membership))
}

impl StateMachine {
    /// The store as it is now, as a snapshot (with its bytes only if `serialise`), recorded as
    /// the current one. The view is taken first and the store synced after: everything the
    /// view holds is then durable, so openraft may purge the log up to the snapshot's last log
    /// id.
    fn take_snapshot(&self, serialise: bool) -> Result<Snapshot, io::Error> {
        let view = self.store.read().map_err(io_err)?;
        let data = if serialise {
            view.snapshot_bytes().map_err(io_err)?
        } else {
            Vec::new()
        };
        let (last_log_id, last_membership) = position(&view)?;
        drop(view);
        self.store.sync().map_err(io_err)?;
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(meta.clone());
        Ok(Snapshot {
            meta,
            snapshot: std::io::Cursor::new(data),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    /// openraft builds snapshots to learn how far it may purge the log, and keeps only their
    /// metadata (its state machine worker, and its start-up when the log was purged, drop the
    /// data at once). The store itself is the snapshot, as etcd's backend file is: so a build
    /// syncs the store and describes it, and serialises nothing. The bytes are made only when a
    /// follower needs them (`get_current_snapshot`). Serialising the whole store every
    /// `--snapshot-count` entries cost a copy of the data in memory and seconds of CPU at 1M keys.
    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        self.take_snapshot(false)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.read_position()
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(item) = entries.try_next().await? {
            batch.push(item);
        }
        if batch.is_empty() {
            return Ok(());
        }
        // Applied inline: a batch takes a fraction of a millisecond, and handing the worker
        // over with `block_in_place` measured no better on 2 cores (more context switches).
        let outcome = self.apply_batch(batch)?;
        for observer in &self.observers {
            if !outcome.lease_changes.is_empty() {
                observer.leases_changed(&outcome.lease_changes);
            }
            observer.events_applied(outcome.revision, &outcome.events, outcome.with_prev_kv);
        }
        for (r, answer) in outcome.replies {
            r.send(answer);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        self.store.restore_from_bytes(&data).map_err(io_err)?;
        let mut batch = self.store.write().map_err(io_err)?;
        batch
            .set_meta(META_APPLIED, &encode(&meta.last_log_id)?)
            .map_err(io_err)?;
        batch
            .set_meta(META_MEMBERSHIP, &encode(&meta.last_membership)?)
            .map_err(io_err)?;
        let revision = batch.current_revision();
        batch.commit(true).map_err(io_err)?;
        tracing::info!(
            revision,
            bytes = data.len(),
            "installed a snapshot from the leader"
        );
        for observer in &self.observers {
            observer.restored(revision);
        }
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(meta.clone());
        Ok(())
    }

    /// The snapshot to send a lagging follower: the store as it is now (never older than the
    /// last one built, since the store only moves forward), or none if none was built yet.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let built = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !built {
            return Ok(None);
        }
        self.take_snapshot(true).map(Some)
    }
}

/// Decodes the member attributes published through Raft.
pub fn decode_member_attributes(bytes: &[u8]) -> Option<MemberAttributes> {
    MemberAttributes::decode(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
    use synod_proto::peerpb::InternalRequest;

    fn store_with_keys(dir: &std::path::Path, n: usize) -> MvccStore {
        let store = MvccStore::open(&dir.join("state.redb")).expect("open store");
        let mut batch = store.write().expect("write batch");
        for i in 0..n {
            let req = InternalRequest {
                request: Some(Request::Put(PutRequest {
                    key: format!("k{i:04}").into_bytes(),
                    value: format!("v{i}").into_bytes(),
                    ..Default::default()
                })),
            };
            batch.apply(&req, &|_| false).expect("put");
        }
        batch.commit(true).expect("commit");
        store
    }

    fn all_keys(store: &MvccStore) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
        let view = store.read().expect("read view");
        let resp = view
            .range(&RangeRequest {
                key: vec![0],
                range_end: vec![0],
                ..Default::default()
            })
            .expect("range");
        resp.kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision))
            .collect()
    }

    #[tokio::test]
    async fn a_built_snapshot_carries_no_bytes_but_the_current_one_is_the_whole_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_keys(dir.path(), 50);
        let mut sm = StateMachine::new(store.clone());
        assert!(
            sm.get_current_snapshot().await.expect("current").is_none(),
            "no snapshot before one is built"
        );
        let built = sm.build_snapshot().await.expect("build");
        assert!(
            built.snapshot.get_ref().is_empty(),
            "a build serialises nothing"
        );

        let current = sm
            .get_current_snapshot()
            .await
            .expect("current")
            .expect("a snapshot once one was built");
        assert_eq!(current.meta, built.meta);
        assert!(!current.snapshot.get_ref().is_empty());

        // Installed on a member with an empty store, it reproduces every key and revision.
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = MvccStore::open(&other_dir.path().join("state.redb")).expect("open store");
        let mut follower = StateMachine::new(other.clone());
        follower
            .install_snapshot(&current.meta, current.snapshot)
            .await
            .expect("install");
        assert_eq!(all_keys(&other), all_keys(&store));
        assert_eq!(all_keys(&other).len(), 50);
        assert_eq!(
            follower.applied_state().await.expect("applied").0,
            current.meta.last_log_id
        );
    }
}
