//! [`WriteBatch`]: applying replicated write requests inside one redb write transaction.

use redb::{Durability, ReadableTable, Table, WriteTransaction};
use std::collections::HashSet;

use synod_proto::etcdserverpb::{
    request_op, response_op, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseCheckpoint, LeaseCheckpointResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse,
};
use synod_proto::mvccpb::{event::EventType, Event, KeyValue};
use synod_proto::peerpb::{internal_request, internal_response, InternalRequest, InternalResponse};

use crate::error::MvccError;
use crate::layout::{
    decode_change, decode_lease_entry, encode_delete_change_into, encode_index_entry_into,
    encode_lease_record, encode_put_change_into, lease_key_into, IndexEntry, PutMeta, Rev, INDEX,
    LEASES, LEASE_KEYS, META, META_COMPACT_REV, META_CURRENT_REV, META_LIVE_KEYS,
    RESERVED_META_PREFIX, REVS,
};
use crate::read::{header, range, to_kv, KeyRange, PreState, Tables};
use crate::store::{read_live_keys, read_meta_revisions};
use crate::Revision;

type RwTables<'t> = Tables<
    Table<'t, &'static [u8], &'static [u8]>,
    Table<'t, &'static [u8], &'static [u8]>,
    Table<'t, &'static [u8], ()>,
>;

/// Every table of the store, opened once per batch: opening a redb table looks it up in the
/// table tree and closing it stages its root for the commit, which is too much to pay for
/// every request.
struct BatchTables<'t> {
    kv: RwTables<'t>,
    meta: Table<'t, &'static str, &'static [u8]>,
    leases: Table<'t, &'static [u8], &'static [u8]>,
}

fn open_batch_tables(txn: &WriteTransaction) -> Result<BatchTables<'_>, MvccError> {
    Ok(BatchTables {
        kv: Tables {
            index: txn.open_table(INDEX)?,
            revs: txn.open_table(REVS)?,
            lease_keys: txn.open_table(LEASE_KEYS)?,
        },
        meta: txn.open_table(META)?,
        leases: txn.open_table(LEASES)?,
    })
}

self_cell::self_cell!(
    /// The batch's write transaction together with its open tables. A redb `Table` borrows
    /// its transaction, so keeping both in the batch needs a self-referential cell; the
    /// tables are dropped (their roots handed back to the transaction) before the
    /// transaction whenever the cell is dropped or [`OpenTxn::into_owner`] is called.
    struct OpenTxn {
        owner: WriteTransaction,
        #[covariant]
        dependent: BatchTables,
    }
);

/// Reusable encoding buffers, so that a change allocates no scratch space of its own.
#[derive(Default)]
struct Scratch {
    /// A `kv_revs` record.
    record: Vec<u8>,
    /// A `kv_index` entry.
    index: Vec<u8>,
    /// A `kv_lease_keys` key.
    aux: Vec<u8>,
}

/// How many `kv_revs` entries compaction reads per step.
const COMPACTION_CHUNK: usize = 1024;

/// One redb write transaction applying a batch of raft entries.
///
/// Every [`WriteBatch::apply`] is atomic with respect to request errors (`Compacted`,
/// `KeyNotFound`, ...): a rejected request changes nothing and the batch stays usable. A
/// store error (`Storage`, `Corrupt`) may leave a request half-applied, so it *poisons* the
/// batch: later calls fail and [`WriteBatch::commit`] refuses — drop the batch (which aborts
/// the transaction) and treat the error as fatal for the state machine.
///
/// While a `WriteBatch` is open, other writers (`MvccStore::write`, `sync`, `size_in_use`,
/// `restore_from_bytes`) block; readers do not.
pub struct WriteBatch {
    txn: OpenTxn,
    /// The store revision including this batch; written to `meta` once, at commit.
    current_rev: Revision,
    /// The compaction revision including this batch; written to `meta` once, at commit.
    compact_rev: Option<Revision>,
    /// Live keys including this batch; written to `meta` once, at commit.
    live_keys: u64,
    revisions_dirty: bool,
    /// Whether events carry `prev_kv` (see [`WriteBatch::set_prev_kv_in_events`]).
    prev_kv_in_events: bool,
    events: Vec<Event>,
    scratch: Scratch,
    poisoned: Option<String>,
}

/// Per-request state: the revision the request writes at and what it changed so far.
struct ReqCtx {
    /// The store revision before the request; its changes are written at `begin_rev + 1`.
    begin_rev: Revision,
    /// Changes made so far (the next change's sub revision).
    changes: i64,
    /// Live keys, including this request's changes so far.
    live: u64,
    /// Whether events carry `prev_kv`.
    prev_kv_in_events: bool,
    /// State of every touched key before the request (for events' `prev_kv`). `None` for
    /// requests that change every key at most once (all but txns): there the state a change
    /// finds *is* the state before the request, so nothing needs remembering.
    pre: Option<PreState>,
    /// The batch's events, lent to the request; its own start at `events_start`.
    events: Vec<Event>,
    events_start: usize,
    buf: Scratch,
}

impl ReqCtx {
    /// The revision reads inside the request observe (etcd `storeTxnWrite.Range`).
    fn read_rev(&self) -> Revision {
        if self.changes > 0 {
            self.begin_rev + 1
        } else {
            self.begin_rev
        }
    }

    fn next_rev(&self) -> Rev {
        Rev::new(self.begin_rev + 1, self.changes)
    }

    /// Notes that `key` is about to change; `now` is its live version as the change finds
    /// it. Returns the key's live version before the request if `want` (for a `prev_kv`).
    fn prev_state(&mut self, key: &[u8], want: bool, now: Option<PutMeta>) -> Option<PutMeta> {
        match &mut self.pre {
            None => now.filter(|_| want),
            Some(pre) => {
                let before = *pre.entry(key.to_vec()).or_insert(now);
                before.filter(|_| want)
            }
        }
    }
}

impl WriteBatch {
    pub(crate) fn begin(txn: WriteTransaction) -> Result<WriteBatch, MvccError> {
        let txn = OpenTxn::try_new(txn, open_batch_tables)?;
        let (current_rev, compact_rev) = read_meta_revisions(&txn.borrow_dependent().meta)?;
        let live_keys = read_live_keys(&txn.borrow_dependent().meta)?;
        Ok(WriteBatch {
            txn,
            current_rev,
            compact_rev,
            live_keys,
            revisions_dirty: false,
            prev_kv_in_events: true,
            events: Vec::new(),
            scratch: Scratch::default(),
            poisoned: None,
        })
    }

    fn tables(&self) -> &BatchTables<'_> {
        self.txn.borrow_dependent()
    }

    fn check_usable(&self) -> Result<(), MvccError> {
        match &self.poisoned {
            Some(cause) => Err(MvccError::Storage(format!(
                "write batch is unusable after: {cause}"
            ))),
            None => Ok(()),
        }
    }

    /// The store revision including everything applied in this batch.
    pub fn current_revision(&self) -> Revision {
        self.current_rev
    }

    /// The last compaction revision including this batch (0 if never compacted).
    pub fn compact_revision(&self) -> Revision {
        self.compact_rev.unwrap_or(0)
    }

    /// Whether the events of the requests applied from now on carry `prev_kv` (the default).
    /// Filling it reads each overwritten or deleted key's old value; an embedding layer with
    /// no watcher that wants it turns it off, and reads it from history for a watcher that
    /// turns up later (see [`crate::ReadView::events_between`]).
    pub fn set_prev_kv_in_events(&mut self, on: bool) {
        self.prev_kv_in_events = on;
    }

    /// etcd's `compactMainRev`: the oldest readable revision, `-1` if never compacted.
    fn first_rev(&self) -> Revision {
        self.compact_rev.unwrap_or(-1)
    }

    /// Starts a request: lends it the batch's events and scratch buffers (given back by
    /// [`WriteBatch::finish`]). `may_repeat_keys`: whether it may change a key twice.
    fn start_request(&mut self, may_repeat_keys: bool) -> ReqCtx {
        let events = std::mem::take(&mut self.events);
        ReqCtx {
            begin_rev: self.current_rev,
            changes: 0,
            live: self.live_keys,
            prev_kv_in_events: self.prev_kv_in_events,
            pre: may_repeat_keys.then(PreState::new),
            events_start: events.len(),
            events,
            buf: std::mem::take(&mut self.scratch),
        }
    }

    /// Applies one replicated write request with etcd 3.4 semantics. `lease_exists` answers
    /// whether a lease id a put attaches is granted; [`WriteBatch::apply_with_lease_table`]
    /// answers it from this store's `leases` table (what a replicated state machine wants).
    ///
    /// Lease grants, revocations and checkpoints ([`WriteBatch::grant_lease`],
    /// [`WriteBatch::revoke_lease`], [`WriteBatch::checkpoint_leases`]) always use the `leases`
    /// table.
    pub fn apply(
        &mut self,
        req: &InternalRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<InternalResponse, MvccError> {
        self.check_usable()?;
        let Some(request) = &req.request else {
            return Err(MvccError::InvalidRequest(
                "InternalRequest carries no request".into(),
            ));
        };
        match request {
            internal_request::Request::LeaseGrant(g) => {
                self.grant_lease(g.id, g.ttl)?;
                let resp = LeaseGrantResponse {
                    header: header(self.current_rev),
                    id: g.id,
                    ttl: g.ttl,
                    error: String::new(),
                };
                return Ok(InternalResponse {
                    response: Some(internal_response::Response::LeaseGrant(resp)),
                });
            }
            internal_request::Request::LeaseRevoke(r) => {
                let (_, rev) = self.revoke_lease(r.id)?;
                let resp = LeaseRevokeResponse {
                    header: header(rev),
                };
                return Ok(InternalResponse {
                    response: Some(internal_response::Response::LeaseRevoke(resp)),
                });
            }
            internal_request::Request::LeaseCheckpoint(c) => {
                self.checkpoint_leases(&c.checkpoints)?;
                let resp = LeaseCheckpointResponse {
                    header: header(self.current_rev),
                };
                return Ok(InternalResponse {
                    response: Some(internal_response::Response::LeaseCheckpoint(resp)),
                });
            }
            _ => {}
        }
        let mut ctx = self.start_request(matches!(request, internal_request::Request::Txn(_)));
        let first_rev = self.first_rev();
        let compact_rev = self.compact_rev;
        let mut new_compact = None;
        let result = self.txn.with_dependent_mut(|_, tables| {
            let t = &mut tables.kv;
            Ok(match request {
                internal_request::Request::Put(p) => {
                    internal_response::Response::Put(exec_put(t, &mut ctx, p, Some(lease_exists))?)
                }
                internal_request::Request::DeleteRange(d) => {
                    internal_response::Response::DeleteRange(exec_delete_range(t, &mut ctx, d)?)
                }
                internal_request::Request::Txn(txn) => internal_response::Response::Txn(
                    exec_top_txn(t, &mut ctx, txn, first_rev, lease_exists)?,
                ),
                internal_request::Request::Compaction(c) => {
                    let (resp, rev) = exec_compaction(t, &ctx, c, compact_rev)?;
                    new_compact = Some(rev);
                    internal_response::Response::Compaction(resp)
                }
                #[allow(unreachable_patterns)]
                _ => {
                    return Err(MvccError::InvalidRequest(
                        "not a key-value request (handled outside the mvcc store)".into(),
                    ))
                }
            })
        });
        self.finish(
            ctx,
            result.map(|r| InternalResponse { response: Some(r) }),
            new_compact,
        )
    }

    /// Book-keeping after a request: bump the revision, keep events, or poison on failure.
    /// Takes back what [`WriteBatch::start_request`] lent.
    fn finish<T>(
        &mut self,
        ctx: ReqCtx,
        result: Result<T, MvccError>,
        new_compact: Option<Revision>,
    ) -> Result<T, MvccError> {
        let ReqCtx {
            changes,
            live,
            mut events,
            events_start,
            buf,
            ..
        } = ctx;
        self.scratch = buf;
        match result {
            Ok(v) => {
                if changes > 0 {
                    self.current_rev += 1;
                    self.live_keys = live;
                    self.revisions_dirty = true;
                }
                if let Some(c) = new_compact {
                    self.compact_rev = Some(c);
                    self.revisions_dirty = true;
                }
                self.events = events;
                Ok(v)
            }
            Err(e) => {
                // A failed request's events are dropped.
                events.truncate(events_start);
                self.events = events;
                if !e.is_request_error() || changes > 0 {
                    self.poisoned = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// [`WriteBatch::apply`] with every attached lease checked against the `leases` table
    /// (as of this batch, so a grant earlier in the batch counts).
    pub fn apply_with_lease_table(
        &mut self,
        req: &InternalRequest,
    ) -> Result<InternalResponse, MvccError> {
        let mut wanted = Vec::new();
        attached_leases(req, &mut wanted);
        let mut granted = HashSet::new();
        for id in wanted {
            if self.lease_exists(id)? {
                granted.insert(id);
            }
        }
        self.apply(req, &|id| granted.contains(&id))
    }

    /// Whether lease `id` is granted, as of this batch.
    pub fn lease_exists(&self, id: i64) -> Result<bool, MvccError> {
        self.check_usable()?;
        let found = self
            .tables()
            .leases
            .get(id.to_be_bytes().as_slice())?
            .is_some();
        Ok(found)
    }

    /// Grants lease `id` with `ttl` seconds (etcd `lessor.Grant`, minus the deadline, which is
    /// not replicated state). Does not change the store revision. Id 0 (etcd's `NoLease`) is
    /// refused with [`MvccError::LeaseNotFound`], like etcd; a granted id with
    /// [`MvccError::LeaseExists`].
    pub fn grant_lease(&mut self, id: i64, ttl: i64) -> Result<(), MvccError> {
        self.check_usable()?;
        if id == 0 {
            return Err(MvccError::LeaseNotFound);
        }
        let result = self.txn.with_dependent_mut(|_, tables| {
            let key = id.to_be_bytes();
            if tables.leases.get(key.as_slice())?.is_some() {
                return Err(MvccError::LeaseExists);
            }
            // A new lease has no checkpointed remaining TTL: it starts from its full TTL.
            tables
                .leases
                .insert(key.as_slice(), encode_lease_record(ttl, None).as_slice())?;
            Ok(())
        });
        let ctx = self.start_request(false);
        self.finish(ctx, result, None)
    }

    /// Records each lease's remaining TTL (etcd `lessor.Checkpoint` with persisted
    /// checkpoints): what a restarted cluster resumes the lease with. A remaining TTL `<= 0`
    /// clears the recorded value (etcd's "unset": the full TTL). Ids that are not granted are
    /// ignored — the checkpoint may have been proposed before a revocation applied ahead of
    /// it — so a checkpoint never fails for a request reason. Does not change the store
    /// revision. Returns how many leases were updated.
    pub fn checkpoint_leases(
        &mut self,
        checkpoints: &[LeaseCheckpoint],
    ) -> Result<usize, MvccError> {
        self.check_usable()?;
        let result = self.txn.with_dependent_mut(|_, tables| {
            let mut updated = 0;
            for cp in checkpoints {
                let key = cp.id.to_be_bytes();
                let ttl = match tables.leases.get(key.as_slice())? {
                    Some(g) => decode_lease_entry(&key, g.value())?.1,
                    None => continue,
                };
                let record = encode_lease_record(ttl, Some(cp.remaining_ttl));
                tables.leases.insert(key.as_slice(), record.as_slice())?;
                updated += 1;
            }
            Ok(updated)
        });
        // Only a storage or corruption error can fail it, which poisons the batch.
        let ctx = self.start_request(false);
        self.finish(ctx, result, None)
    }

    /// Revokes lease `id` (etcd `lessor.Revoke`): deletes every attached key in key order in
    /// ONE revision (none if no key is attached) and removes the lease. Returns the number of
    /// keys deleted and the resulting store revision. Unknown id: [`MvccError::LeaseNotFound`].
    pub fn revoke_lease(&mut self, id: i64) -> Result<(i64, Revision), MvccError> {
        if !self.lease_exists(id)? {
            return Err(MvccError::LeaseNotFound);
        }
        let (deleted, rev) = self.revoke_lease_keys(id)?;
        let result = self
            .txn
            .with_dependent_mut(|_, tables| -> Result<(), MvccError> {
                tables.leases.remove(id.to_be_bytes().as_slice())?;
                Ok(())
            });
        // A failure here leaves the keys deleted but the lease granted: poison the batch.
        if let Err(e) = result {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        Ok((deleted, rev))
    }

    /// Deletes every key attached to `lease` (in key order, one revision, like etcd's lease
    /// revocation). Returns the number of keys deleted and the resulting store revision.
    /// Leaves the `leases` table alone (see [`WriteBatch::revoke_lease`]).
    pub fn revoke_lease_keys(&mut self, lease: i64) -> Result<(i64, Revision), MvccError> {
        self.check_usable()?;
        // The attached keys are distinct, so each changes once.
        let mut ctx = self.start_request(false);
        let result = self.txn.with_dependent_mut(|_, tables| {
            let t = &mut tables.kv;
            let keys = t.keys_with_lease(lease)?;
            for k in &keys {
                delete_key(t, &mut ctx, k)?;
            }
            Ok(keys.len() as i64)
        });
        let n = self.finish(ctx, result, None)?;
        Ok((n, self.current_rev))
    }

    /// A range read through this batch (sees everything applied so far).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.check_usable()?;
        range(
            &self.tables().kv,
            req,
            self.current_rev,
            self.first_rev(),
            self.live_keys,
        )
    }

    /// Live keys attached to `lease`, as of this batch.
    pub fn keys_with_lease(&self, lease: i64) -> Result<Vec<Vec<u8>>, MvccError> {
        self.check_usable()?;
        self.tables().kv.keys_with_lease(lease)
    }

    /// Stores an opaque value under `key` in the `meta` table (names starting with `mvcc/`
    /// are reserved for the store itself).
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), MvccError> {
        self.check_usable()?;
        if key.starts_with(RESERVED_META_PREFIX) {
            return Err(MvccError::InvalidRequest(format!(
                "meta key {key:?} is reserved"
            )));
        }
        self.txn
            .with_dependent_mut(|_, tables| -> Result<(), MvccError> {
                tables.meta.insert(key, value)?;
                Ok(())
            })
    }

    /// Reads a `meta` value as of this batch.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, MvccError> {
        let value = self.tables().meta.get(key)?.map(|g| g.value().to_vec());
        Ok(value)
    }

    /// Watch events produced by this batch so far, in revision order. `prev_kv` is filled
    /// like etcd's watch server does: the key's state before the request (revision
    /// `mod_revision - 1`), omitted for creations.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Moves the events out of the batch.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Commits the batch. `durable == false` commits with redb `Durability::None`: visible
    /// to readers at once, persisted by the next durable commit (or [`crate::MvccStore::sync`]).
    pub fn commit(mut self, durable: bool) -> Result<(), MvccError> {
        if let Some(cause) = self.poisoned.take() {
            let _ = self.txn.into_owner().abort();
            return Err(MvccError::Storage(format!(
                "refusing to commit a failed write batch: {cause}"
            )));
        }
        if self.revisions_dirty {
            let (current_rev, compact_rev, live) =
                (self.current_rev, self.compact_rev, self.live_keys);
            self.txn
                .with_dependent_mut(|_, tables| -> Result<(), MvccError> {
                    tables
                        .meta
                        .insert(META_CURRENT_REV, current_rev.to_be_bytes().as_slice())?;
                    tables
                        .meta
                        .insert(META_LIVE_KEYS, live.to_be_bytes().as_slice())?;
                    if let Some(c) = compact_rev {
                        tables
                            .meta
                            .insert(META_COMPACT_REV, c.to_be_bytes().as_slice())?;
                    }
                    Ok(())
                })?;
        }
        // Closes the tables (handing their roots to the transaction), then commits.
        let mut txn = self.txn.into_owner();
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        txn.commit()?;
        Ok(())
    }
}
/// Every non-zero lease a put in `req` attaches (both branches of every txn).
fn attached_leases(req: &InternalRequest, out: &mut Vec<i64>) {
    fn walk_txn(t: &TxnRequest, out: &mut Vec<i64>) {
        for op in t.success.iter().chain(t.failure.iter()) {
            match &op.request {
                Some(request_op::Request::RequestPut(p)) if p.lease != 0 => out.push(p.lease),
                Some(request_op::Request::RequestTxn(inner)) => walk_txn(inner, out),
                _ => {}
            }
        }
    }
    match &req.request {
        Some(internal_request::Request::Put(p)) if p.lease != 0 => out.push(p.lease),
        Some(internal_request::Request::Txn(t)) => walk_txn(t, out),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Primitive changes

/// Writes `key = value` at the request's next sub revision (etcd `storeTxnWrite.put`).
fn put_key(
    t: &mut RwTables<'_>,
    ctx: &mut ReqCtx,
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(), MvccError> {
    let rev = ctx.next_rev();
    let old = t.index_entry(key)?;
    let old_live = old.as_ref().and_then(|e| e.live().copied());
    let (create_revision, version) = match &old_live {
        Some(m) => (m.create_revision, m.version + 1),
        None => (rev.main, 1),
    };
    // A key created earlier in this request (deleted, then put again) has no `prev_kv`,
    // like etcd's.
    let want_prev = ctx.prev_kv_in_events && create_revision != rev.main;
    let prev_kv = match ctx.prev_state(key, want_prev, old_live) {
        Some(before) => Some(t.live_kv(key, &before)?),
        None => None,
    };
    if let Some(m) = &old_live {
        if m.lease != 0 && m.lease != lease {
            lease_key_into(&mut ctx.buf.aux, m.lease, key);
            t.lease_keys.remove(ctx.buf.aux.as_slice())?;
        }
    } else {
        ctx.live += 1;
    }
    if lease != 0 {
        lease_key_into(&mut ctx.buf.aux, lease, key);
        t.lease_keys.insert(ctx.buf.aux.as_slice(), ())?;
    }
    let m = PutMeta {
        mod_rev: rev,
        create_revision,
        version,
        lease,
    };
    encode_index_entry_into(&mut ctx.buf.index, &IndexEntry::Put(m));
    t.index.insert(key, ctx.buf.index.as_slice())?;
    let prev = old.as_ref().map(IndexEntry::rev);
    encode_put_change_into(&mut ctx.buf.record, key, prev, &m, value);
    t.revs
        .insert(rev.encode().as_slice(), ctx.buf.record.as_slice())?;
    ctx.changes += 1;

    ctx.events.push(Event {
        r#type: EventType::Put as i32,
        kv: Some(to_kv(key, &m, value)),
        prev_kv,
    });
    Ok(())
}

/// Deletes `key` (which must be live) at the next sub revision; false if it was not live.
fn delete_key(t: &mut RwTables<'_>, ctx: &mut ReqCtx, key: &[u8]) -> Result<bool, MvccError> {
    let rev = ctx.next_rev();
    let Some(IndexEntry::Put(m)) = t.index_entry(key)? else {
        return Ok(false);
    };
    let prev_kv = match ctx.prev_state(key, ctx.prev_kv_in_events, Some(m)) {
        Some(before) => Some(t.live_kv(key, &before)?),
        None => None,
    };
    if m.lease != 0 {
        lease_key_into(&mut ctx.buf.aux, m.lease, key);
        t.lease_keys.remove(ctx.buf.aux.as_slice())?;
    }
    encode_index_entry_into(&mut ctx.buf.index, &IndexEntry::Tombstone(rev));
    t.index.insert(key, ctx.buf.index.as_slice())?;
    encode_delete_change_into(&mut ctx.buf.record, key, Some(m.mod_rev));
    t.revs
        .insert(rev.encode().as_slice(), ctx.buf.record.as_slice())?;
    ctx.live = ctx.live.saturating_sub(1);
    ctx.changes += 1;

    ctx.events.push(Event {
        r#type: EventType::Delete as i32,
        kv: Some(KeyValue {
            key: key.to_vec(),
            mod_revision: rev.main,
            ..Default::default()
        }),
        prev_kv,
    });
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// Requests (etcd 3.4 etcdserver/apply.go)

/// etcd `applierV3backend.Put`. `lease_exists` is `Some` for a top-level put (etcd checks
/// the lease there) and `None` inside a txn (checked up front by `check_puts`).
fn exec_put(
    t: &mut RwTables<'_>,
    ctx: &mut ReqCtx,
    p: &PutRequest,
    lease_exists: Option<&dyn Fn(i64) -> bool>,
) -> Result<PutResponse, MvccError> {
    if let Some(lease_exists) = lease_exists {
        if p.lease != 0 && !lease_exists(p.lease) {
            return Err(MvccError::LeaseNotFound);
        }
    }
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        t.latest_kv(&p.key)?
    } else {
        None
    };
    let (value, lease) = if p.ignore_value || p.ignore_lease {
        let Some(prev) = &prev else {
            return Err(MvccError::KeyNotFound);
        };
        (
            if p.ignore_value {
                prev.value.as_slice()
            } else {
                p.value.as_slice()
            },
            if p.ignore_lease { prev.lease } else { p.lease },
        )
    } else {
        (p.value.as_slice(), p.lease)
    };
    put_key(t, ctx, &p.key, value, lease)?;
    Ok(PutResponse {
        header: header(ctx.begin_rev + 1),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

/// etcd `applierV3backend.DeleteRange`.
fn exec_delete_range(
    t: &mut RwTables<'_>,
    ctx: &mut ReqCtx,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, MvccError> {
    let kr = KeyRange::from_request(&d.key, &d.range_end);
    let cur = ctx.read_rev();
    let prev_kvs = if d.prev_kv {
        t.range_at(&kr, cur, cur, ctx.live, true, true, 0)?.0
    } else {
        Vec::new()
    };
    let keys = t.latest_keys_in(&kr)?;
    let mut deleted = 0i64;
    for k in &keys {
        if delete_key(t, ctx, k)? {
            deleted += 1;
        }
    }
    Ok(DeleteRangeResponse {
        header: header(ctx.read_rev()),
        deleted,
        prev_kvs,
    })
}

/// Which branch every txn on the execution path takes: the top txn's, then (in op order)
/// those of the txns nested in the chosen branch. etcd evaluates them all up front, against
/// the state before the txn (`compareToPath`).
struct TxnPath {
    succeeded: bool,
    nested: Vec<TxnPath>,
}

fn chosen_ops(txn: &TxnRequest, succeeded: bool) -> &[synod_proto::etcdserverpb::RequestOp] {
    if succeeded {
        &txn.success
    } else {
        &txn.failure
    }
}

fn compare_path(t: &RwTables<'_>, txn: &TxnRequest) -> Result<TxnPath, MvccError> {
    let mut succeeded = true;
    for c in &txn.compare {
        if !t.compare(c)? {
            succeeded = false;
            break;
        }
    }
    let mut nested = Vec::new();
    for op in chosen_ops(txn, succeeded) {
        if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
            nested.push(compare_path(t, inner)?);
        }
    }
    Ok(TxnPath { succeeded, nested })
}

fn missing_path() -> MvccError {
    MvccError::Corrupt("internal error: txn path does not match the txn".into())
}

/// A write on the execution path, for predicting key existence during validation.
enum SimOp {
    Put(Vec<u8>),
    Delete(KeyRange),
}

fn exists_after(sim: &[SimOp], key: &[u8], before: bool) -> bool {
    for op in sim.iter().rev() {
        match op {
            SimOp::Put(k) if k == key => return true,
            SimOp::Delete(kr) if kr.contains(key) => return false,
            _ => {}
        }
    }
    before
}

/// etcd `checkRequests(.., checkRequestPut)`: validates every put on the path against the
/// state before the txn. In addition, a put with `ignore_value`/`ignore_lease` on a key an
/// earlier op of the same txn deleted is rejected with `KeyNotFound` (etcd 3.4 panics there).
fn check_puts(
    t: &RwTables<'_>,
    txn: &TxnRequest,
    path: &TxnPath,
    sim: &mut Vec<SimOp>,
    lease_exists: &dyn Fn(i64) -> bool,
) -> Result<(), MvccError> {
    let mut nested = path.nested.iter();
    for op in chosen_ops(txn, path.succeeded) {
        match &op.request {
            Some(request_op::Request::RequestTxn(inner)) => {
                let p = nested.next().ok_or_else(missing_path)?;
                check_puts(t, inner, p, sim, lease_exists)?;
            }
            Some(request_op::Request::RequestPut(p)) => {
                if p.ignore_value || p.ignore_lease {
                    let before = t.latest_exists(&p.key)?;
                    if !before || !exists_after(sim, &p.key, before) {
                        return Err(MvccError::KeyNotFound);
                    }
                }
                if p.lease != 0 && !lease_exists(p.lease) {
                    return Err(MvccError::LeaseNotFound);
                }
                sim.push(SimOp::Put(p.key.clone()));
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                sim.push(SimOp::Delete(KeyRange::from_request(&d.key, &d.range_end)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// etcd `checkRequests(.., checkRequestRange)`. Note etcd's quirk, kept: only revision 0
/// means "latest" here, so a negative revision is reported as compacted whenever it is
/// below the compaction floor (which is -1 before the first compaction).
fn check_ranges(
    txn: &TxnRequest,
    path: &TxnPath,
    begin_rev: Revision,
    first_rev: Revision,
) -> Result<(), MvccError> {
    let mut nested = path.nested.iter();
    for op in chosen_ops(txn, path.succeeded) {
        match &op.request {
            Some(request_op::Request::RequestTxn(inner)) => {
                let p = nested.next().ok_or_else(missing_path)?;
                check_ranges(inner, p, begin_rev, first_rev)?;
            }
            Some(request_op::Request::RequestRange(r)) => {
                if r.revision == 0 {
                    continue;
                }
                if r.revision > begin_rev {
                    return Err(MvccError::FutureRevision);
                }
                if r.revision < first_rev {
                    return Err(MvccError::Compacted);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// etcd `applierV3backend.Txn`.
fn exec_top_txn(
    t: &mut RwTables<'_>,
    ctx: &mut ReqCtx,
    txn: &TxnRequest,
    first_rev: Revision,
    lease_exists: &dyn Fn(i64) -> bool,
) -> Result<TxnResponse, MvccError> {
    let path = compare_path(t, txn)?;
    check_puts(t, txn, &path, &mut Vec::new(), lease_exists)?;
    check_ranges(txn, &path, ctx.begin_rev, first_rev)?;
    let mut resp = exec_txn(t, ctx, txn, &path, first_rev)?;
    // etcd: the txn's revision, +1 if it changed anything.
    resp.header = header(ctx.read_rev());
    Ok(resp)
}

/// etcd `applyTxn`. Sub-responses carry etcd's headers: a range reports the revision it
/// read at, a put `begin + 1`, a delete-range `begin + 1` if anything in the txn has changed
/// by then (else `begin`), and a nested txn an all-zero header.
fn exec_txn(
    t: &mut RwTables<'_>,
    ctx: &mut ReqCtx,
    txn: &TxnRequest,
    path: &TxnPath,
    first_rev: Revision,
) -> Result<TxnResponse, MvccError> {
    let ops = chosen_ops(txn, path.succeeded);
    let mut nested = path.nested.iter();
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                Some(response_op::Response::ResponseRange(range(
                    &*t,
                    r,
                    ctx.read_rev(),
                    first_rev,
                    ctx.live,
                )?))
            }
            Some(request_op::Request::RequestPut(p)) => Some(response_op::Response::ResponsePut(
                exec_put(t, ctx, p, None)?,
            )),
            Some(request_op::Request::RequestDeleteRange(d)) => Some(
                response_op::Response::ResponseDeleteRange(exec_delete_range(t, ctx, d)?),
            ),
            Some(request_op::Request::RequestTxn(inner)) => {
                let p = nested.next().ok_or_else(missing_path)?;
                let mut r = exec_txn(t, ctx, inner, p, first_rev)?;
                r.header = Some(ResponseHeader::default());
                Some(response_op::Response::ResponseTxn(r))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: path.succeeded,
        responses,
    })
}

/// etcd `applierV3backend.Compaction` + `store.Compact`, done synchronously. Returns the
/// response and the new compaction revision.
fn exec_compaction(
    t: &mut RwTables<'_>,
    ctx: &ReqCtx,
    c: &CompactionRequest,
    previous: Option<Revision>,
) -> Result<(CompactionResponse, Revision), MvccError> {
    let rev = c.revision;
    if rev <= previous.unwrap_or(-1) {
        return Err(MvccError::Compacted);
    }
    if rev > ctx.begin_rev {
        return Err(MvccError::FutureRevision);
    }
    compact(t, previous, rev)?;
    Ok((
        CompactionResponse {
            header: header(ctx.begin_rev),
        },
        rev,
    ))
}

/// Physically removes what compaction at `to` makes unreachable: for every key, all
/// versions with main revision `<= to` except the newest one, and that one too if it is a
/// tombstone (with the key's index entry, if the tombstone is its newest change).
///
/// Walks `kv_revs` over `(previous, to]` only — whatever survived the previous compaction
/// and was not superseded since is still the newest version of its key. Visiting change `e`,
/// the key's previous change (its chain link) is superseded by `e` and deleted: O(1) per
/// change.
fn compact(
    t: &mut RwTables<'_>,
    previous: Option<Revision>,
    to: Revision,
) -> Result<(), MvccError> {
    let mut cursor = Rev::new(previous.map_or(0, |p| p.saturating_add(1)), 0);
    let end = Rev::new(to.saturating_add(1), 0).encode();
    loop {
        // (revision, previous change, deleted key if a tombstone)
        let mut chunk: Vec<(Rev, Option<Rev>, Option<Vec<u8>>)> =
            Vec::with_capacity(COMPACTION_CHUNK);
        {
            let lo = cursor.encode();
            for entry in t.revs.range::<&[u8]>(lo.as_slice()..end.as_slice())? {
                let (k, v) = entry?;
                let rev = Rev::decode(k.value())?;
                let change = decode_change(rev, v.value())?;
                let tombstone = change.put.is_none().then(|| change.key.to_vec());
                chunk.push((rev, change.prev, tombstone));
                if chunk.len() >= COMPACTION_CHUNK {
                    break;
                }
            }
        }
        let Some(&(last, _, _)) = chunk.last() else {
            break;
        };
        for (rev, prev, tombstone) in &chunk {
            if let Some(p) = prev {
                t.revs.remove(p.encode().as_slice())?;
            }
            if let Some(key) = tombstone {
                t.revs.remove(rev.encode().as_slice())?;
                if t.index_entry(key)? == Some(IndexEntry::Tombstone(*rev)) {
                    t.index.remove(key.as_slice())?;
                }
            }
        }
        cursor = Rev::new(last.main, last.sub.saturating_add(1));
    }
    Ok(())
}
