//! The Raft log with group commit, on the segment files of [`super::wal`].
//!
//! openraft hands us appends one batch at a time and only needs to hear back (through the
//! `IOFlushed` callback) once they are durable. A single writer thread owns every write to the
//! log: it drains whatever appends, truncations, purges and votes are queued, encodes them as
//! records into one buffer, writes it with ONE `pwrite` and makes it durable with ONE
//! `fdatasync`, and only then fires the callbacks. Under load many client writes share one
//! sync, the same trick etcd's WAL plays; with one client, a write costs one small append and
//! one sync, nothing more.
//!
//! Appended entries are visible to readers at once through an in-memory tail cache, because the
//! leader replicates entries before they are locally durable. The cache never drops an entry
//! that is not yet on disk; older entries are read back from their segment by position (the
//! in-memory location index, rebuilt by replaying the segments at start).
//!
//! Segments whose entries are all purged (they are in the state machine) are deleted after the
//! purge is durable. This module must never acknowledge an append before the sync that covers
//! it, and never write again after a failed write or sync (the file's state is then unknown).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use tokio::sync::oneshot;

use super::storage_codec::{decode, encode, io_err};
use super::typ::{Entry, IOFlushed, LogId, LogState, Vote};
use super::wal::{self, Kind, Segment};
use super::TypeConfig;

/// How many durable entries the tail cache keeps for replication reads.
const CACHE_KEEP: usize = 8192;
/// The most queued operations one group commit takes.
const MAX_GROUP: usize = 4096;
/// How often the writer saves openraft's `committed` hint.
const COMMITTED_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1000);

enum Op {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
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
    Vote {
        value: Vec<u8>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// Where a durable entry's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    seq: u64,
    offset: u64,
    len: u32,
}

/// The durable entries' locations: index `first + i` is at `at[i]`; no holes.
#[derive(Default)]
struct Locations {
    first: u64,
    at: VecDeque<Location>,
}

impl Locations {
    fn last(&self) -> Option<u64> {
        (!self.at.is_empty()).then(|| self.first + self.at.len() as u64 - 1)
    }

    /// Records entry `index`. An index at or below the last one replaces it and everything
    /// after (what a truncation followed by appends leaves); one just above appends. A hole is
    /// refused.
    fn put(&mut self, index: u64, loc: Location) -> Result<(), String> {
        match self.last() {
            None => {
                self.first = index;
                self.at.push_back(loc);
            }
            Some(last) if index == last + 1 => self.at.push_back(loc),
            Some(_) if index >= self.first => {
                self.truncate_after(Some(index - 1));
                self.at.push_back(loc);
            }
            Some(_) if index + 1 == self.first => {
                // Below everything kept: nothing survives after it.
                self.at.clear();
                self.first = index;
                self.at.push_back(loc);
            }
            Some(last) => return Err(format!("entry {index} leaves a hole after entry {last}")),
        }
        Ok(())
    }

    fn truncate_after(&mut self, after: Option<u64>) {
        let keep = match after {
            None => 0,
            Some(a) if a < self.first => 0,
            Some(a) => (a - self.first + 1).min(self.at.len() as u64) as usize,
        };
        self.at.truncate(keep);
    }

    fn purge(&mut self, upto: u64) {
        while !self.at.is_empty() && self.first <= upto {
            self.at.pop_front();
            self.first += 1;
        }
        if self.at.is_empty() {
            self.first = self.first.max(upto + 1);
        }
    }

    fn get(&self, index: u64) -> Option<Location> {
        index
            .checked_sub(self.first)
            .and_then(|i| self.at.get(i as usize).copied())
    }
}

#[derive(Default)]
struct Tail {
    /// Recent entries, contiguous up to the last appended one.
    entries: BTreeMap<u64, Entry>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    locations: Locations,
    /// Every segment that may hold a durable entry, for readers.
    segments: BTreeMap<u64, Arc<Segment>>,
}

struct Shared {
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

/// What replaying the segments found.
struct Replayed {
    tail: Tail,
    committed: Option<LogId>,
    writer: Writer,
}

impl LogStore {
    /// Opens (or creates) the log in directory `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        Self::open_with_segments_of(dir, wal::SEGMENT_BYTES)
    }

    /// [`LogStore::open`] with segments of `segment_bytes` (tests roll over small ones).
    fn open_with_segments_of(dir: &Path, segment_bytes: u64) -> io::Result<LogStore> {
        let in_dir =
            |e: io::Error| io::Error::new(e.kind(), format!("raft log {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(in_dir)?;
        let Replayed {
            tail,
            committed,
            writer,
        } = replay(dir, segment_bytes).map_err(in_dir)?;
        let shared = Arc::new(Shared {
            tail: Mutex::new(tail),
            pending_committed: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(for_writer, writer, rx))
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

/// Rebuilds the log's state from every segment in `dir`, oldest first.
fn replay(dir: &Path, segment_bytes: u64) -> io::Result<Replayed> {
    let mut tail = Tail::default();
    let mut committed = None;
    let mut seg_last = BTreeMap::new();
    let mut state = DurableState::default();
    let listed = wal::list_segments(dir)?;
    let mut active = None;
    let count = listed.len();
    // The lowest index after a hole between segments (a segment deleted after a purge whose
    // deletion did not reach the disk before a crash): a later purge must cover it.
    let mut hole_below: Option<u64> = None;
    for (i, (seq, path)) in listed.into_iter().enumerate() {
        let last = i + 1 == count;
        let (segment, records, end) = Segment::open(seq, &path, last, segment_bytes)?;
        let corrupt = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment {}: {what}", path.display()),
            )
        };
        for r in records {
            match r.kind {
                Kind::Header => {}
                Kind::Entry => {
                    let index = entry_index(&r.body).map_err(|e| corrupt(e.to_string()))?;
                    let loc = Location {
                        seq,
                        offset: r.offset,
                        len: r.len,
                    };
                    if let Err(e) = tail.locations.put(index, loc) {
                        // Only acceptable where an older segment's entries were purged.
                        tracing::debug!(reason = %e, "raft log replay: entries resume after a purged stretch");
                        tail.locations = Locations::default();
                        tail.locations.put(index, loc).map_err(corrupt)?;
                        hole_below = Some(index);
                    }
                    let top = seg_last.entry(seq).or_insert(index);
                    *top = (*top).max(index);
                }
                Kind::Truncate => {
                    let after = decode_truncate(&r.body).map_err(|e| corrupt(e.to_string()))?;
                    tail.locations.truncate_after(after);
                }
                Kind::Purge => {
                    let upto: LogId = decode(&r.body)?;
                    tail.locations.purge(upto.index());
                    tail.last_purged = Some(upto);
                    state.purged = Some(r.body);
                }
                Kind::Vote => {
                    tail.vote = Some(decode(&r.body)?);
                    state.vote = Some(r.body);
                }
                Kind::Committed => {
                    committed = decode::<Option<LogId>>(&r.body)?;
                    state.committed = Some(r.body);
                }
            }
        }
        let segment = Arc::new(segment);
        tail.segments.insert(seq, segment.clone());
        if last {
            active = Some((segment, end));
        }
    }
    if let Some(hole) = hole_below {
        let purged = tail.last_purged.as_ref().map_or(0, |p| p.index());
        if purged + 1 < hole {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("entries before {hole} are missing and were never purged (a segment file was lost)"),
            ));
        }
    }
    // The last entry's id, read back from its record.
    tail.last_log_id = match tail.locations.last() {
        Some(index) => {
            let loc = tail
                .locations
                .get(index)
                .ok_or_else(|| io_err("raft log: location index out of step"))?;
            Some(read_entry(&tail.segments, loc)?.log_id())
        }
        None => tail.last_purged,
    };
    let (active, offset) = match active {
        Some(a) => a,
        None => (Arc::new(Segment::create(dir, 1, segment_bytes)?), 0),
    };
    tail.segments.insert(active.seq, active.clone());
    Ok(Replayed {
        tail,
        committed,
        writer: Writer {
            dir: dir.to_path_buf(),
            segment_bytes,
            active,
            offset,
            state,
            seg_last,
            buf: Vec::new(),
            failed: None,
        },
    })
}

fn entry_index(body: &[u8]) -> io::Result<u64> {
    let b: [u8; 8] = body
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "entry record too short"))?;
    Ok(u64::from_le_bytes(b))
}

fn decode_truncate(body: &[u8]) -> io::Result<Option<u64>> {
    match body {
        [0] => Ok(None),
        [1, rest @ ..] => entry_index(rest).map(Some),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad truncate record",
        )),
    }
}

/// Reads and decodes the entry at `loc`.
fn read_entry(segments: &BTreeMap<u64, Arc<Segment>>, loc: Location) -> io::Result<Entry> {
    let segment = segments
        .get(&loc.seq)
        .ok_or_else(|| io_err(format!("raft log segment {} is gone", loc.seq)))?;
    let bytes = segment.read_record(loc.offset, loc.len)?;
    decode_entry_record(&bytes)
}

fn decode_entry_record(bytes: &[u8]) -> io::Result<Entry> {
    match wal::parse_record(bytes)? {
        (Kind::Entry, body) if body.len() >= 8 => decode(&body[8..]),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "raft log: expected an entry record",
        )),
    }
}

/// The latest vote, purge and committed records, re-written at the head of each new segment.
#[derive(Default)]
struct DurableState {
    vote: Option<Vec<u8>>,
    purged: Option<Vec<u8>>,
    committed: Option<Vec<u8>>,
}

/// Owned by the writer thread: the segment being appended to and where.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    active: Arc<Segment>,
    offset: u64,
    state: DurableState,
    /// The highest entry index written in each segment that has entries.
    seg_last: BTreeMap<u64, u64>,
    buf: Vec<u8>,
    /// Set by the first failed write or sync; every later operation fails with it.
    failed: Option<String>,
}

/// What one durable group changed, for the shared state.
struct Written {
    /// Per append op, in order: the locations of its entries.
    locations: Vec<Vec<(u64, Location)>>,
    /// Segments deleted after a purge.
    deleted: Vec<u64>,
    /// A segment started for this group.
    new_segment: Option<Arc<Segment>>,
}

impl Writer {
    fn write_group(&mut self, group: &[Op], committed: Option<Vec<u8>>) -> io::Result<Written> {
        if let Some(why) = &self.failed {
            return Err(io_err(format!(
                "raft log unusable after an earlier failure: {why}"
            )));
        }
        let result = self.try_write_group(group, committed);
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn try_write_group(&mut self, group: &[Op], committed: Option<Vec<u8>>) -> io::Result<Written> {
        self.buf.clear();
        let mut appended: Vec<Vec<(u64, usize, u32)>> = Vec::new();
        // This group's last vote and purge, for the next segment's head once it is durable.
        let mut voted = None;
        let mut purged = None;
        for op in group {
            match op {
                Op::Append { entries, .. } => {
                    let mut list = Vec::with_capacity(entries.len());
                    for (index, bytes) in entries {
                        let at = wal::push_record(
                            &mut self.buf,
                            Kind::Entry,
                            &[&index.to_le_bytes(), bytes],
                        );
                        list.push((*index, at, (self.buf.len() - at) as u32));
                    }
                    appended.push(list);
                }
                Op::Truncate { after, .. } => {
                    match after {
                        None => wal::push_record(&mut self.buf, Kind::Truncate, &[&[0]]),
                        Some(a) => wal::push_record(
                            &mut self.buf,
                            Kind::Truncate,
                            &[&[1], &a.to_le_bytes()],
                        ),
                    };
                }
                Op::Purge { upto, .. } => {
                    let bytes = encode(upto)?;
                    wal::push_record(&mut self.buf, Kind::Purge, &[&bytes]);
                    purged = Some((upto.index(), bytes));
                }
                Op::Vote { value, .. } => {
                    wal::push_record(&mut self.buf, Kind::Vote, &[value]);
                    voted = Some(value);
                }
            }
        }
        if let Some(c) = &committed {
            wal::push_record(&mut self.buf, Kind::Committed, &[c]);
        }

        // A full segment: the group goes to a new one.
        let mut new_segment = None;
        if self.offset > 0 && self.offset + self.buf.len() as u64 > self.segment_bytes {
            let next = Arc::new(Segment::create(
                &self.dir,
                self.active.seq + 1,
                self.segment_bytes,
            )?);
            self.active = next.clone();
            self.offset = 0;
            new_segment = Some(next);
        }
        // A fresh segment opens with its header and the state so far.
        let mut shift = 0;
        if self.offset == 0 {
            let mut head = Vec::new();
            Segment::header(&mut head, self.active.seq);
            if let Some(v) = &self.state.vote {
                wal::push_record(&mut head, Kind::Vote, &[v]);
            }
            if let Some(p) = &self.state.purged {
                wal::push_record(&mut head, Kind::Purge, &[p]);
            }
            if let Some(c) = &self.state.committed {
                wal::push_record(&mut head, Kind::Committed, &[c]);
            }
            shift = head.len();
            self.buf.splice(0..0, head);
        }

        self.active.file.write_all_at(&self.buf, self.offset)?;
        self.active.file.sync_data()?;

        let base = self.offset + shift as u64;
        let seq = self.active.seq;
        self.offset += self.buf.len() as u64;
        let locations = appended
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|(index, at, len)| {
                        let top = self.seg_last.entry(seq).or_insert(index);
                        *top = (*top).max(index);
                        (
                            index,
                            Location {
                                seq,
                                offset: base + at as u64,
                                len,
                            },
                        )
                    })
                    .collect()
            })
            .collect();

        // The group is durable: remember the state for the next segment's head, and drop the
        // segments a purge emptied.
        if let Some(vote) = voted {
            self.state.vote = Some(vote.clone());
        }
        if committed.is_some() {
            self.state.committed = committed;
        }
        let deleted = match purged {
            Some((upto, bytes)) => {
                self.state.purged = Some(bytes);
                self.delete_purged(upto)
            }
            None => Vec::new(),
        };
        Ok(Written {
            locations,
            deleted,
            new_segment,
        })
    }

    /// Deletes every segment older than the active one whose entries are all at or below
    /// `upto` (or that has none). A failure here loses nothing: the files are deleted later.
    fn delete_purged(&mut self, upto: u64) -> Vec<u64> {
        let mut deleted = Vec::new();
        let Ok(listed) = wal::list_segments(&self.dir) else {
            return deleted;
        };
        for (seq, path) in listed {
            if seq >= self.active.seq {
                break;
            }
            if self.seg_last.get(&seq).is_some_and(|&last| last > upto) {
                // Segments are in log order: nothing newer is fully purged either.
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.seg_last.remove(&seq);
                    deleted.push(seq);
                }
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "could not delete a purged raft log segment");
                    break;
                }
            }
        }
        if !deleted.is_empty() {
            if let Err(e) = wal::sync_dir(&self.dir) {
                tracing::warn!(error = %e, "could not sync the raft log directory after deleting segments");
            }
        }
        deleted
    }
}

fn writer_loop(shared: Arc<Shared>, mut writer: Writer, rx: mpsc::Receiver<Op>) {
    let mut committed_saved = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        // `committed` is a hint for faster recovery; saved at most every interval.
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
        let result = writer.write_group(&group, committed);
        finish_group(&shared, group, result);
    }
}

fn finish_group(shared: &Shared, group: Vec<Op>, result: io::Result<Written>) {
    let err = |r: &io::Result<Written>| match r {
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    };
    if let Ok(written) = &result {
        let mut tail = shared.tail();
        if let Some(seg) = &written.new_segment {
            tail.segments.insert(seg.seq, seg.clone());
        }
        let mut appended = written.locations.iter();
        for op in &group {
            match op {
                Op::Append { .. } => {
                    for &(index, loc) in appended.next().into_iter().flatten() {
                        if let Err(e) = tail.locations.put(index, loc) {
                            tracing::error!(reason = %e, "raft log location index out of step");
                        }
                    }
                }
                Op::Truncate { after, .. } => tail.locations.truncate_after(*after),
                Op::Purge { upto, .. } => tail.locations.purge(upto.index()),
                Op::Vote { .. } => {}
            }
        }
        for seq in &written.deleted {
            tail.segments.remove(seq);
        }
        // The highest index on disk: the cache may drop what is at or below it.
        if let Some(flushed) = tail.locations.last() {
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
            Op::Truncate { done, .. } | Op::Purge { done, .. } | Op::Vote { done, .. } => {
                let _ = done.send(err(&result));
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
        // Under the lock: the cached entries, and where the others are on disk.
        let (cached, on_disk, segments) = {
            let tail = self.shared.tail();
            let cache_start = tail.entries.first_key_value().map(|(k, _)| *k);
            let lo = start.max(cache_start.unwrap_or(u64::MAX));
            let cached: Vec<Entry> = match (cache_start, end) {
                (None, _) => Vec::new(),
                (Some(_), Some(e)) if lo >= e => Vec::new(),
                (Some(_), Some(e)) => tail.entries.range(lo..e).map(|(_, v)| v.clone()).collect(),
                (Some(_), None) => tail.entries.range(lo..).map(|(_, v)| v.clone()).collect(),
            };
            let disk_end = match (cache_start, end) {
                (Some(c), Some(e)) => c.min(e),
                (Some(c), None) => c,
                (None, Some(e)) => e,
                (None, None) => tail.locations.last().map_or(0, |l| l + 1),
            };
            let disk_start = start.max(tail.locations.first);
            let on_disk: Vec<Location> = (disk_start..disk_end)
                .map_while(|i| tail.locations.get(i))
                .collect();
            let segments = if on_disk.is_empty() {
                BTreeMap::new()
            } else {
                tail.segments.clone()
            };
            (cached, on_disk, segments)
        };
        let mut out = Vec::with_capacity(on_disk.len() + cached.len());
        // Records of consecutive entries are adjacent in a segment: one read per run.
        let mut i = 0;
        while i < on_disk.len() {
            let first = on_disk[i];
            let mut j = i + 1;
            let mut run_end = first.offset + u64::from(first.len);
            while j < on_disk.len()
                && on_disk[j].seq == first.seq
                && on_disk[j].offset == run_end
                && run_end - first.offset < (4 << 20)
            {
                run_end += u64::from(on_disk[j].len);
                j += 1;
            }
            let segment = segments
                .get(&first.seq)
                .ok_or_else(|| io_err(format!("raft log segment {} is gone", first.seq)))?;
            let mut buf = vec![0u8; (run_end - first.offset) as usize];
            segment.file.read_exact_at(&mut buf, first.offset)?;
            let mut at = 0usize;
            for loc in &on_disk[i..j] {
                let len = loc.len as usize;
                out.push(decode_entry_record(&buf[at..at + len])?);
                at += len;
            }
            i = j;
        }
        out.extend(cached);
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.tail().vote)
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
        Ok(self.shared.tail().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState, io::Error> {
        let tail = self.shared.tail();
        Ok(LogState {
            last_purged_log_id: tail.last_purged,
            last_log_id: tail.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let value = encode(vote)?;
        self.send_wait(|done| Op::Vote { value, done }).await?;
        self.shared.tail().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Never worth a sync of its own: it rides along with the next group commit. A lost
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
        Ok(self.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut tail = self.shared.tail();
            for e in entries {
                let index = e.index();
                encoded.push((index, encode(&e)?));
                tail.last_log_id = Some(e.log_id());
                tail.entries.insert(index, e);
            }
        }
        if encoded.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        self.send(Op::Append {
            entries: encoded,
            done: callback,
        })
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let after = last_log_id.as_ref().map(|l| l.index());
        {
            let mut tail = self.shared.tail();
            let from = after.map_or(0, |a| a + 1);
            let _ = tail.entries.split_off(&from);
            // Truncating after a point beyond the last entry removes nothing.
            let beyond = tail.last_log_id.as_ref().map(|l| l.index());
            if after.is_none_or(|a| beyond.is_some_and(|b| b > a)) {
                tail.last_log_id = last_log_id.or_else(|| tail.last_purged);
            }
        }
        self.send_wait(|done| Op::Truncate { after, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id;
        self.send_wait(|done| Op::Purge { upto, done }).await?;
        let mut tail = self.shared.tail();
        let keep = tail.entries.split_off(&(log_id.index() + 1));
        tail.entries = keep;
        if tail
            .last_log_id
            .as_ref()
            .is_none_or(|l| l.index() < log_id.index())
        {
            tail.last_log_id = Some(log_id);
        }
        tail.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
