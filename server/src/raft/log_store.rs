//! The Raft log on redb, with group commit.
//!
//! openraft hands us appends one batch at a time and only needs to hear back (through the
//! `IOFlushed` callback) once they are durable. A single writer thread owns every write to the log
//! file: it drains whatever appends, truncations, purges and votes are queued, writes them all in
//! ONE redb transaction (one fsync), and only then fires the callbacks. Under load many client
//! writes therefore share one fsync — the same trick etcd's WAL plays.
//!
//! Appended entries are visible to readers at once through an in-memory tail cache, because the
//! leader replicates entries before they are locally durable. The cache never drops an entry
//! that is not yet in the file.
//!
//! On-disk layout (file `raft-log.redb` in the member directory):
//! - table `raft_log`: `u64` log index -> postcard-encoded openraft `Entry`.
//! - table `raft_meta`: `"vote"` -> postcard `Vote`; `"committed"` -> postcard `Option<LogId>`;
//!   `"last_purged"` -> postcard `LogId`.
//!
//! This module must never acknowledge an append before the fsync that covers it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::storage_codec::{decode, encode, io_err};
use super::typ::{Entry, IOFlushed, LogId, LogState, Vote};
use super::TypeConfig;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// redb's page cache for the log (its default is 1 GiB). Recent entries are served from the
/// tail cache; the pages redb keeps are mostly the ones the next appends rewrite.
const LOG_CACHE_BYTES: usize = 16 << 20;
/// How many durable entries the tail cache keeps for replication reads.
const CACHE_KEEP: usize = 8192;
/// The most queued operations one group commit takes.
const MAX_GROUP: usize = 4096;
/// How often the writer saves openraft's `committed` hint.
const COMMITTED_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1000);

enum Op {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        last: u64,
        done: IOFlushed,
    },
    Truncate {
        after: Option<u64>,
        done: oneshot::Sender<io::Result<()>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<io::Result<()>>,
    },
    Meta {
        key: &'static str,
        value: Vec<u8>,
        done: Option<oneshot::Sender<io::Result<()>>>,
    },
}

#[derive(Default)]
struct Tail {
    /// Recent entries, contiguous up to the last appended one.
    entries: BTreeMap<u64, Entry>,
    /// Highest index known to be in the file.
    flushed: Option<u64>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
}

struct Shared {
    db: Arc<Database>,
    tail: Mutex<Tail>,
    /// The latest `committed` log id, written with the next group commit.
    pending_committed: Mutex<Option<Vec<u8>>>,
}

impl Shared {
    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        // A poisoned lock means a panic elsewhere already; the data itself is still consistent
        // because every mutation is a single insert/remove.
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The Raft log storage handed to openraft.
pub struct LogStore {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
    committed: Option<LogId>,
}

/// A cheap reader over the same log, used by replication tasks.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogStore {
    /// Opens (or creates) the log file and starts its writer thread.
    pub fn open(path: &Path) -> io::Result<LogStore> {
        let db = redb::Builder::new()
            .set_cache_size(LOG_CACHE_BYTES)
            .create(path)
            .map_err(|e| io_err(format!("open raft log {}: {e}", path.display())))?;
        let db = Arc::new(db);
        let mut tail = Tail::default();
        let committed;
        {
            let w = db.begin_write().map_err(io_err)?;
            {
                w.open_table(ENTRIES).map_err(io_err)?;
                w.open_table(META).map_err(io_err)?;
            }
            w.commit().map_err(io_err)?;
            let r = db.begin_read().map_err(io_err)?;
            let meta = r.open_table(META).map_err(io_err)?;
            tail.vote = meta
                .get("vote")
                .map_err(io_err)?
                .map(|v| decode(v.value()))
                .transpose()?;
            tail.last_purged = meta
                .get("last_purged")
                .map_err(io_err)?
                .map(|v| decode(v.value()))
                .transpose()?;
            committed = meta
                .get("committed")
                .map_err(io_err)?
                .map(|v| decode::<Option<LogId>>(v.value()))
                .transpose()?
                .flatten();
            let entries = r.open_table(ENTRIES).map_err(io_err)?;
            let last = entries
                .last()
                .map_err(io_err)?
                .map(|(k, v)| (k.value(), v.value().to_vec()));
            if let Some((k, v)) = last {
                let e: Entry = decode(&v)?;
                tail.flushed = Some(k);
                tail.last_log_id = Some(e.log_id());
            } else {
                tail.last_log_id = tail.last_purged.clone();
            }
        }
        let shared = Arc::new(Shared {
            db,
            tail: Mutex::new(tail),
            pending_committed: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(io_err)?;
        Ok(LogStore {
            shared,
            ops: tx,
            committed,
        })
    }

    fn send(&self, op: Op) -> io::Result<()> {
        self.ops
            .send(op)
            .map_err(|_| io_err("raft log writer stopped"))
    }

    async fn send_wait(
        &self,
        make: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Op,
    ) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| io_err("raft log writer stopped"))?
    }
}

fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<Op>) {
    let mut committed_saved = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        // `committed` is a hint for faster recovery; writing it with every group would rewrite
        // the meta table's pages on every commit, so it is saved at most every interval.
        let committed = if committed_saved.elapsed() >= COMMITTED_SAVE_INTERVAL {
            committed_saved = Instant::now();
            shared
                .pending_committed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        } else {
            None
        };
        let result = write_group(&shared.db, &group, committed.as_deref());
        finish_group(&shared, group, result);
    }
}

fn write_group(db: &Database, group: &[Op], committed: Option<&[u8]>) -> io::Result<()> {
    let w = db.begin_write().map_err(io_err)?;
    {
        let mut entries = w.open_table(ENTRIES).map_err(io_err)?;
        // Opened only when something in the group needs it: an untouched table costs nothing
        // at commit, a touched one rewrites its pages.
        let needs_meta = committed.is_some()
            || group
                .iter()
                .any(|op| matches!(op, Op::Purge { .. } | Op::Meta { .. }));
        let mut meta = if needs_meta {
            Some(w.open_table(META).map_err(io_err)?)
        } else {
            None
        };
        if let (Some(c), Some(meta)) = (committed, meta.as_mut()) {
            meta.insert("committed", c).map_err(io_err)?;
        }
        for op in group {
            match op {
                Op::Append { entries: list, .. } => {
                    for (index, bytes) in list {
                        entries.insert(*index, bytes.as_slice()).map_err(io_err)?;
                    }
                }
                Op::Truncate { after, .. } => {
                    let from = after.map_or(0, |a| a + 1);
                    entries.retain_in(from.., |_, _| false).map_err(io_err)?;
                }
                Op::Purge { upto, .. } => {
                    entries
                        .retain_in(..=upto.index(), |_, _| false)
                        .map_err(io_err)?;
                    if let Some(meta) = meta.as_mut() {
                        meta.insert("last_purged", encode(upto)?.as_slice())
                            .map_err(io_err)?;
                    }
                }
                Op::Meta { key, value, .. } => {
                    if let Some(meta) = meta.as_mut() {
                        meta.insert(*key, value.as_slice()).map_err(io_err)?;
                    }
                }
            }
        }
    }
    w.commit().map_err(io_err)
}

fn finish_group(shared: &Shared, group: Vec<Op>, result: io::Result<()>) {
    let err = |r: &io::Result<()>| match r {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    };
    if result.is_ok() {
        let mut tail = shared.tail();
        for op in &group {
            match op {
                Op::Append { last, .. } => tail.flushed = Some(*last),
                Op::Truncate { after, .. } => {
                    tail.flushed = match (tail.flushed, after) {
                        (Some(f), Some(a)) => Some(f.min(*a)),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        if let Some(flushed) = tail.flushed {
            while tail.entries.len() > CACHE_KEEP {
                match tail.entries.first_key_value() {
                    Some((&k, _)) if k <= flushed => {
                        tail.entries.remove(&k);
                    }
                    _ => break,
                }
            }
        }
    }
    for op in group {
        match op {
            Op::Append { done, .. } => done.io_completed(err(&result)),
            Op::Truncate { done, .. } | Op::Purge { done, .. } => {
                let _ = done.send(err(&result));
            }
            Op::Meta { done, .. } => {
                if let Some(done) = done {
                    let _ = done.send(err(&result));
                }
            }
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => Some(e.saturating_add(1)),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = bounds(&range);
        let (cached, cache_start) = {
            let tail = self.shared.tail();
            let cache_start = tail.entries.first_key_value().map(|(k, _)| *k);
            let lo = start.max(cache_start.unwrap_or(u64::MAX));
            let cached: Vec<Entry> = match (cache_start, end) {
                (None, _) => Vec::new(),
                (Some(_), Some(e)) if lo >= e => Vec::new(),
                (Some(_), Some(e)) => tail.entries.range(lo..e).map(|(_, v)| v.clone()).collect(),
                (Some(_), None) => tail.entries.range(lo..).map(|(_, v)| v.clone()).collect(),
            };
            (cached, cache_start)
        };
        let disk_end = match (cache_start, end) {
            (Some(c), Some(e)) => Some(c.min(e)),
            (Some(c), None) => Some(c),
            (None, e) => e,
        };
        let mut out = Vec::new();
        if disk_end.is_none_or(|d| d > start) {
            let r = self.shared.db.begin_read().map_err(io_err)?;
            let t = r.open_table(ENTRIES).map_err(io_err)?;
            let iter = match disk_end {
                Some(d) => t.range(start..d),
                None => t.range(start..),
            }
            .map_err(io_err)?;
            for item in iter {
                let (_, v) = item.map_err(io_err)?;
                out.push(decode::<Entry>(v.value())?);
            }
        }
        out.extend(cached);
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.tail().vote.clone())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        LogReader {
            shared: self.shared.clone(),
        }
        .try_get_log_entries(range)
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.tail().vote.clone())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState, io::Error> {
        let tail = self.shared.tail();
        Ok(LogState {
            last_purged_log_id: tail.last_purged.clone(),
            last_log_id: tail.last_log_id.clone(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let value = encode(vote)?;
        self.send_wait(|done| Op::Meta {
            key: "vote",
            value,
            done: Some(done),
        })
        .await?;
        self.shared.tail().vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Never worth an fsync of its own: it rides along with the next group commit. A lost
        // `committed` only means openraft re-learns it from the quorum after a restart.
        let value = encode(&committed)?;
        self.committed = committed;
        *self
            .shared
            .pending_committed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        let mut last = None;
        {
            let mut tail = self.shared.tail();
            for e in entries {
                let index = e.index();
                encoded.push((index, encode(&e)?));
                tail.last_log_id = Some(e.log_id());
                tail.entries.insert(index, e);
                last = Some(index);
            }
        }
        match last {
            Some(last) => self.send(Op::Append {
                entries: encoded,
                last,
                done: callback,
            }),
            None => {
                callback.io_completed(Ok(()));
                Ok(())
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let after = last_log_id.as_ref().map(|l| l.index());
        {
            let mut tail = self.shared.tail();
            let from = after.map_or(0, |a| a + 1);
            let _ = tail.entries.split_off(&from);
            tail.last_log_id = last_log_id.clone().or_else(|| tail.last_purged.clone());
        }
        self.send_wait(|done| Op::Truncate { after, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.clone();
        self.send_wait(|done| Op::Purge { upto, done }).await?;
        let mut tail = self.shared.tail();
        let keep = tail.entries.split_off(&(log_id.index() + 1));
        tail.entries = keep;
        if tail
            .last_log_id
            .as_ref()
            .is_none_or(|l| l.index() < log_id.index())
        {
            tail.last_log_id = Some(log_id.clone());
        }
        tail.last_purged = Some(log_id);
        Ok(())
    }
}
