//! [`MvccStore`] (the database handle) and [`ReadView`] (a consistent snapshot).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata,
};
use synod_proto::etcdserverpb::{RangeRequest, RangeResponse};
use synod_proto::mvccpb::{Event, KeyValue};

use crate::error::MvccError;
use crate::layout::{
    be_i64, decode_lease_entry, FORMAT_VERSION, FORMAT_VERSION_KV_HISTORY, INDEX, LEASES,
    LEASE_KEYS, META, META_COMPACT_REV, META_CURRENT_REV, META_FORMAT, META_LIVE_KEYS, REVS,
};
use crate::read::{range, Tables};
use crate::write::WriteBatch;
use crate::{snapshot, Revision};

/// Handle to the MVCC store: one redb file. Cheap to clone; all clones share the database.
///
/// The database sits behind a lock that every transaction takes only to begin (redb's
/// transactions do not borrow the database): [`MvccStore::defragment`] takes it exclusively so
/// that no transaction begins while redb compacts the file.
#[derive(Clone)]
pub struct MvccStore {
    db: Arc<RwLock<Database>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for MvccStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MvccStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Reads `(current revision, compaction revision)` from the meta table.
pub(crate) fn read_meta_revisions<T>(meta: &T) -> Result<(Revision, Option<Revision>), MvccError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    let current = match meta.get(META_CURRENT_REV)? {
        Some(g) => be_i64(g.value())?,
        None => return Err(MvccError::Corrupt("meta has no current revision".into())),
    };
    let compact = match meta.get(META_COMPACT_REV)? {
        Some(g) => Some(be_i64(g.value())?),
        None => None,
    };
    if current < 1 || compact.is_some_and(|c| c < 0 || c > current) {
        return Err(MvccError::Corrupt(format!(
            "impossible revisions: current {current}, compacted {compact:?}"
        )));
    }
    Ok((current, compact))
}

/// The number of live keys recorded in the meta table (absent: none).
pub(crate) fn read_live_keys<T>(meta: &T) -> Result<u64, MvccError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
{
    match meta.get(META_LIVE_KEYS)? {
        Some(g) => u64::try_from(be_i64(g.value())?)
            .map_err(|_| MvccError::Corrupt("negative live key count".into())),
        None => Ok(0),
    }
}

/// redb's page cache for the store (its default is 1 GiB). It also holds the pages of the
/// non-durable commits between two durable ones, so it bounds the store's resident memory:
/// with the default a store of a few hundred MB kept all of it resident (2x etcd's RSS at 200k
/// keys). Pages beyond it are read back through the OS page cache, as bbolt's mmap does.
const CACHE_BYTES: usize = 64 << 20;

impl MvccStore {
    /// Opens (or creates) the store at `path`. A file that is not a redb database, is
    /// corrupt, has an unknown layout or cannot be written yields an error, never a panic.
    pub fn open(path: &Path) -> Result<MvccStore, MvccError> {
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(path)
        }));
        let db = match opened {
            Ok(result) => result?,
            Err(_) => {
                return Err(MvccError::Corrupt(format!(
                    "redb panicked opening {}",
                    path.display()
                )))
            }
        };
        let mut txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let format = meta.get(META_FORMAT)?.map(|g| g.value().to_vec());
            if format.as_deref() == Some(&[FORMAT_VERSION_KV_HISTORY]) {
                return Err(MvccError::UnsupportedLayout(format!(
                    "{} has the store layout of development builds before the key index \
                     (layout 1: kv_latest, kv_history); this build reads layout \
                     {FORMAT_VERSION} only: start from an empty data directory",
                    path.display()
                )));
            }
            txn.open_table(INDEX)?;
            txn.open_table(REVS)?;
            txn.open_table(LEASE_KEYS)?;
            txn.open_table(LEASES)?;
            match format.as_deref() {
                None => {
                    if meta.get(META_CURRENT_REV)?.is_some() {
                        return Err(MvccError::Corrupt(
                            "meta has revisions but no format".into(),
                        ));
                    }
                    meta.insert(META_FORMAT, [FORMAT_VERSION].as_slice())?;
                    meta.insert(META_CURRENT_REV, 1i64.to_be_bytes().as_slice())?;
                }
                Some([FORMAT_VERSION]) => {}
                Some(other) => {
                    return Err(MvccError::Corrupt(format!(
                        "unsupported layout version {other:?}"
                    )))
                }
            }
            read_meta_revisions(&meta)?;
        }
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(MvccStore {
            db: Arc::new(RwLock::new(db)),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// The database, to begin a transaction. A poisoned lock still holds a consistent
    /// database: nothing is changed under it but through redb's own transactions.
    fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Compacts the file (etcd's defragment): redb moves live pages down and shrinks the file.
    /// No transaction may begin meanwhile, and those already open must end first: this waits
    /// up to `within` for them, then gives up with nothing changed. Readers and the apply path
    /// wait while it runs, as etcd's do during its defragmentation.
    pub fn defragment(&self, within: Duration) -> Result<(), MvccError> {
        let deadline = Instant::now() + within;
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        loop {
            match db.compact() {
                Ok(_) => return Ok(()),
                Err(redb::CompactionError::TransactionInProgress) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(MvccError::Storage(format!("defragment: {e}"))),
            }
        }
    }

    /// A consistent snapshot of the committed state (a redb read transaction).
    pub fn read(&self) -> Result<ReadView, MvccError> {
        ReadView::new(self.db().begin_read()?)
    }

    /// Starts a write batch (one redb write transaction); blocks while another is open.
    pub fn write(&self) -> Result<WriteBatch, MvccError> {
        WriteBatch::begin(self.db().begin_write()?)
    }

    /// The whole state (every table, including `meta`) as bytes, for raft snapshots.
    /// The format is described in [`crate::layout`].
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>, MvccError> {
        let txn = self.db().begin_read()?;
        snapshot::write_snapshot(&txn)
    }

    /// Replaces the whole state with a snapshot from [`MvccStore::snapshot_bytes`],
    /// atomically and durably. The snapshot is fully validated (checksum, structure, meta)
    /// before anything is changed.
    pub fn restore_from_bytes(&self, data: &[u8]) -> Result<(), MvccError> {
        let parsed = snapshot::parse_snapshot(data)?;
        let mut txn = self.db().begin_write()?;
        snapshot::restore(&txn, &parsed)?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    /// Makes every commit so far durable (an empty `Durability::Immediate` commit).
    pub fn sync(&self) -> Result<(), MvccError> {
        let mut txn = self.db().begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    /// Size of the database file in bytes (etcd `db_size`).
    pub fn size_on_disk(&self) -> u64 {
        match std::fs::metadata(self.path.as_path()) {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot stat the mvcc database");
                0
            }
        }
    }

    /// Bytes of the file holding live pages (etcd `db_size_in_use`). Takes the write lock
    /// briefly (waits for an open [`WriteBatch`]) and walks the B-trees: call it sparingly,
    /// and never while holding a `WriteBatch` on the same thread.
    pub fn size_in_use(&self) -> u64 {
        let result = (|| -> Result<u64, MvccError> {
            let txn = self.db().begin_write()?;
            let stats = txn.stats()?;
            let used = stats
                .allocated_pages()
                .saturating_mul(stats.page_size() as u64);
            txn.abort()?;
            Ok(used)
        })();
        match result {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot compute mvcc database usage");
                self.size_on_disk()
            }
        }
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        self.path.as_path()
    }
}

/// A granted lease as the store keeps it (etcd's `leasepb.Lease`): what a lessor needs to
/// rebuild its deadlines after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub id: i64,
    /// The granted TTL in seconds.
    pub ttl: i64,
    /// The remaining TTL in seconds recorded by the last lease checkpoint applied since the
    /// grant (always `> 0`); `None` if there was none (the remaining TTL is the full TTL).
    pub remaining_ttl: Option<i64>,
}

impl LeaseRecord {
    /// The TTL a restarted cluster resumes the lease with: the checkpointed remaining TTL,
    /// or the granted TTL if the lease was never checkpointed (etcd `Lease.RemainingTTL`).
    pub fn remaining_or_ttl(&self) -> i64 {
        self.remaining_ttl.unwrap_or(self.ttl)
    }
}

/// Entry counts of the store's tables (see [`crate::layout`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys live at the current revision.
    pub live_keys: u64,
    /// Superseded versions and tombstones still on disk: `revision_entries - live_keys`.
    pub history_entries: u64,
    /// Changes still on disk (`kv_revs`): live versions plus history entries.
    pub revision_entries: u64,
    /// Keys the index knows (`kv_index`): live keys and keys whose deletion is not yet
    /// compacted away.
    pub index_entries: u64,
    /// Lease attachments of live keys (`kv_lease_keys`).
    pub lease_attachments: u64,
}

type RoTables = Tables<
    ReadOnlyTable<&'static [u8], &'static [u8]>,
    ReadOnlyTable<&'static [u8], &'static [u8]>,
    ReadOnlyTable<&'static [u8], ()>,
>;

/// A consistent, read-only snapshot of the store (a redb read transaction). Holding it
/// keeps the pages it sees alive; drop it promptly.
pub struct ReadView {
    tables: RoTables,
    meta: ReadOnlyTable<&'static str, &'static [u8]>,
    leases: ReadOnlyTable<&'static [u8], &'static [u8]>,
    current_rev: Revision,
    compact_rev: Option<Revision>,
    live_keys: u64,
    _txn: ReadTransaction,
}

impl ReadView {
    /// The whole state as this view sees it, in the format of [`MvccStore::snapshot_bytes`].
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>, MvccError> {
        snapshot::write_snapshot(&self._txn)
    }

    fn new(txn: ReadTransaction) -> Result<ReadView, MvccError> {
        let meta = txn.open_table(META)?;
        let (current_rev, compact_rev) = read_meta_revisions(&meta)?;
        let live_keys = read_live_keys(&meta)?;
        let tables = Tables {
            index: txn.open_table(INDEX)?,
            revs: txn.open_table(REVS)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
        };
        Ok(ReadView {
            tables,
            meta,
            leases: txn.open_table(LEASES)?,
            current_rev,
            compact_rev,
            live_keys,
            _txn: txn,
        })
    }

    /// etcd's Range with every option (see the crate docs). The header carries only the
    /// store's current revision (whatever revision was read at).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        range(
            &self.tables,
            req,
            self.current_rev,
            self.first_rev(),
            self.live_keys,
        )
    }

    /// The current version of one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        self.tables.latest_kv(key)
    }

    /// The store revision of this snapshot.
    pub fn current_revision(&self) -> Revision {
        self.current_rev
    }

    /// The last compaction revision; 0 if the store was never compacted. Reads below it
    /// fail with [`MvccError::Compacted`].
    pub fn compact_revision(&self) -> Revision {
        self.compact_rev.unwrap_or(0)
    }

    fn first_rev(&self) -> Revision {
        self.compact_rev.unwrap_or(-1)
    }

    /// A `meta` value (e.g. the raft layer's applied index).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, MvccError> {
        let value = self.meta.get(key)?.map(|g| g.value().to_vec());
        Ok(value)
    }

    /// Watch catch-up: every change with main revision in `[from_rev, to_rev]` (clamped to
    /// `[1, current]`), in revision order, as etcd events (a delete's `kv` holds only the key
    /// and `mod_revision`). With `limit > 0`, stops at the first revision boundary after
    /// `limit` events — a revision is never split, so continue from the last event's
    /// `mod_revision + 1`. With `with_prev_kv`, fills `prev_kv` like etcd's watch server:
    /// the key at `mod_revision - 1`, except for creations.
    ///
    /// Fails with [`MvccError::Compacted`] if `from_rev` is below the compaction revision
    /// (etcd cancels such watchers, reporting `compact_revision()`).
    pub fn events_between(
        &self,
        from_rev: Revision,
        to_rev: Revision,
        limit: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<Event>, MvccError> {
        let from_rev = from_rev.max(1);
        if self.compact_rev.is_some_and(|c| from_rev < c) {
            return Err(MvccError::Compacted);
        }
        self.tables.events_between(
            from_rev,
            to_rev,
            limit,
            with_prev_kv,
            self.current_rev,
            self.first_rev(),
        )
    }

    /// Live keys attached to `lease`, in key order.
    pub fn keys_with_lease(&self, lease: i64) -> Result<Vec<Vec<u8>>, MvccError> {
        self.tables.keys_with_lease(lease)
    }

    /// etcd's `HashKV`: the hash of the key-value history up to `rev` (0: the current
    /// revision; a negative one covers nothing, as in etcd), computed as etcd 3.4 computes it
    /// over its backend, so the same writes hash alike on both (see `hash.rs`). Returns the
    /// hash and etcd's compaction revision (`-1` if never compacted). A revision at or below
    /// the compaction revision is [`MvccError::Compacted`]; one above the current revision
    /// [`MvccError::FutureRevision`].
    pub fn hash_kv(&self, rev: Revision) -> Result<(u32, Revision), MvccError> {
        let compact = self.first_rev();
        if rev > 0 && rev <= compact {
            return Err(MvccError::Compacted);
        }
        if rev > self.current_rev {
            return Err(MvccError::FutureRevision);
        }
        let rev = if rev == 0 { self.current_rev } else { rev };
        Ok((crate::hash::hash_kv(&self.tables, rev, compact)?, compact))
    }

    /// The granted TTL (seconds) of lease `id`, if it is granted.
    pub fn lease(&self, id: i64) -> Result<Option<i64>, MvccError> {
        Ok(self.lease_record(id)?.map(|r| r.ttl))
    }

    /// Lease `id` with its persisted remaining TTL, if it is granted.
    pub fn lease_record(&self, id: i64) -> Result<Option<LeaseRecord>, MvccError> {
        let key = id.to_be_bytes();
        match self.leases.get(key.as_slice())? {
            Some(g) => Ok(Some(lease_record(&key, g.value())?)),
            None => Ok(None),
        }
    }

    /// Every granted lease as `(id, granted TTL)`, in id order.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, MvccError> {
        Ok(self
            .lease_records()?
            .into_iter()
            .map(|r| (r.id, r.ttl))
            .collect())
    }

    /// Every granted lease with its persisted remaining TTL, in id order.
    pub fn lease_records(&self) -> Result<Vec<LeaseRecord>, MvccError> {
        let mut out = Vec::new();
        for entry in self.leases.iter()? {
            let (k, v) = entry?;
            out.push(lease_record(k.value(), v.value())?);
        }
        // Big-endian bytes order negative ids after positive ones.
        out.sort_unstable_by_key(|r| r.id);
        Ok(out)
    }

    /// Entry counts of the tables (O(1); for metrics and tests).
    pub fn stats(&self) -> Result<StoreStats, MvccError> {
        let revision_entries = self.tables.revs.len()?;
        Ok(StoreStats {
            live_keys: self.live_keys,
            history_entries: revision_entries.saturating_sub(self.live_keys),
            revision_entries,
            index_entries: self.tables.index.len()?,
            lease_attachments: self.tables.lease_keys.len()?,
        })
    }

    /// Every `(lease, key)` attachment, for rebuilding a lessor after restart or restore.
    pub fn lease_attachments(&self) -> Result<Vec<(i64, Vec<u8>)>, MvccError> {
        let mut out = Vec::new();
        for entry in self.tables.lease_keys.iter()? {
            let (k, _) = entry?;
            let raw = k.value();
            if raw.len() < 8 {
                return Err(MvccError::Corrupt("malformed kv_lease_keys key".into()));
            }
            out.push((be_i64(&raw[..8])?, raw[8..].to_vec()));
        }
        Ok(out)
    }
}

fn lease_record(key: &[u8], value: &[u8]) -> Result<LeaseRecord, MvccError> {
    let (id, ttl, remaining_ttl) = decode_lease_entry(key, value)?;
    Ok(LeaseRecord {
        id,
        ttl,
        remaining_ttl,
    })
}
