//! [`WriteBatch`]: applying replicated write requests inside one redb write transaction.

use redb::{Durability, ReadableTable, Table, WriteTransaction};
use std::collections::HashSet;

use synod_proto::etcdserverpb::{
    request_op, response_op, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use synod_proto::mvccpb::{event::EventType, Event, KeyValue};
use synod_proto::peerpb::{internal_request, internal_response, InternalRequest, InternalResponse};

use crate::error::MvccError;
use crate::layout::{
    decode_record, decode_rev_entry, encode_record, encode_rev_entry, escaped_key, history_key,
    lease_key, split_history_key, RecordHeader, Rev, HISTORY, KEYS, KIND_PUT, KIND_TOMBSTONE,
    LATEST, LEASES, LEASE_KEYS, META, META_COMPACT_REV, META_CURRENT_REV, RESERVED_META_PREFIX,
    REVS,
};
use crate::read::{header, range, record_to_kv, KeyRange, PreState, Tables};
use crate::store::read_meta_revisions;
use crate::Revision;

type RwTables<'t> = Tables<
    Table<'t, &'static [u8], &'static [u8]>,
    Table<'t, &'static [u8], ()>,
    Table<'t, &'static [u8], &'static [u8]>,
    Table<'t, &'static [u8], &'static [u8]>,
    Table<'t, &'static [u8], ()>,
>;

fn open_tables(txn: &WriteTransaction) -> Result<RwTables<'_>, MvccError> {
    Ok(Tables {
        latest: txn.open_table(LATEST)?,
        keys: txn.open_table(KEYS)?,
        history: txn.open_table(HISTORY)?,
        revs: txn.open_table(REVS)?,
        lease_keys: txn.open_table(LEASE_KEYS)?,
    })
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
    txn: WriteTransaction,
    current_rev: Revision,
    compact_rev: Option<Revision>,
    revisions_dirty: bool,
    events: Vec<Event>,
    poisoned: Option<String>,
}

/// Per-request state: the revision the request writes at and what it changed so far.
struct ReqCtx {
    /// The store revision before the request; its changes are written at `begin_rev + 1`.
    begin_rev: Revision,
    /// Changes made so far (the next change's sub revision).
    changes: i64,
    /// State of every touched key before the request (for events' `prev_kv`).
    pre: PreState,
    events: Vec<Event>,
}

impl ReqCtx {
    fn new(begin_rev: Revision) -> ReqCtx {
        ReqCtx {
            begin_rev,
            changes: 0,
            pre: PreState::new(),
            events: Vec::new(),
        }
    }

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

    fn note_pre(&mut self, key: &[u8], kv: impl FnOnce() -> Option<KeyValue>) {
        if !self.pre.contains_key(key) {
            self.pre.insert(key.to_vec(), kv());
        }
    }

    fn pre_kv(&self, key: &[u8]) -> Option<KeyValue> {
        self.pre.get(key).cloned().flatten()
    }
}

impl WriteBatch {
    pub(crate) fn begin(txn: WriteTransaction) -> Result<WriteBatch, MvccError> {
        let (current_rev, compact_rev) = {
            let meta = txn.open_table(META)?;
            read_meta_revisions(&meta)?
        };
        Ok(WriteBatch {
            txn,
            current_rev,
            compact_rev,
            revisions_dirty: false,
            events: Vec::new(),
            poisoned: None,
        })
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

    /// etcd's `compactMainRev`: the oldest readable revision, `-1` if never compacted.
    fn first_rev(&self) -> Revision {
        self.compact_rev.unwrap_or(-1)
    }

    /// Applies one replicated write request with etcd 3.4 semantics. `lease_exists` answers
    /// whether a lease id a put attaches is granted; [`WriteBatch::apply_with_lease_table`]
    /// answers it from this store's `leases` table (what a replicated state machine wants).
    ///
    /// Lease grants and revocations ([`WriteBatch::grant_lease`], [`WriteBatch::revoke_lease`])
    /// always use the `leases` table.
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
            _ => {}
        }
        let mut ctx = ReqCtx::new(self.current_rev);
        let first_rev = self.first_rev();
        let mut new_compact = None;
        let result =
            (|| -> Result<_, MvccError> {
                let mut t = open_tables(&self.txn)?;
                Ok(match request {
                    internal_request::Request::Put(p) => internal_response::Response::Put(
                        exec_put(&mut t, &mut ctx, p, Some(lease_exists))?,
                    ),
                    internal_request::Request::DeleteRange(d) => {
                        internal_response::Response::DeleteRange(exec_delete_range(
                            &mut t, &mut ctx, d,
                        )?)
                    }
                    internal_request::Request::Txn(txn) => internal_response::Response::Txn(
                        exec_top_txn(&mut t, &mut ctx, txn, first_rev, lease_exists)?,
                    ),
                    internal_request::Request::Compaction(c) => {
                        let (resp, rev) = exec_compaction(&mut t, &ctx, c, self.compact_rev)?;
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
            })();
        self.finish(
            ctx,
            result.map(|r| InternalResponse { response: Some(r) }),
            new_compact,
        )
    }

    /// Book-keeping after a request: bump the revision, keep events, or poison on failure.
    fn finish<T>(
        &mut self,
        ctx: ReqCtx,
        result: Result<T, MvccError>,
        new_compact: Option<Revision>,
    ) -> Result<T, MvccError> {
        match result {
            Ok(v) => {
                if ctx.changes > 0 {
                    self.current_rev += 1;
                    self.revisions_dirty = true;
                }
                if let Some(c) = new_compact {
                    self.compact_rev = Some(c);
                    self.revisions_dirty = true;
                }
                self.events.extend(ctx.events);
                Ok(v)
            }
            Err(e) => {
                if !e.is_request_error() || ctx.changes > 0 {
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
        let leases = self.txn.open_table(LEASES)?;
        let found = leases.get(id.to_be_bytes().as_slice())?.is_some();
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
        let result = (|| -> Result<(), MvccError> {
            let mut leases = self.txn.open_table(LEASES)?;
            let key = id.to_be_bytes();
            if leases.get(key.as_slice())?.is_some() {
                return Err(MvccError::LeaseExists);
            }
            leases.insert(key.as_slice(), ttl.to_be_bytes().as_slice())?;
            Ok(())
        })();
        self.finish(ReqCtx::new(self.current_rev), result, None)
    }

    /// Revokes lease `id` (etcd `lessor.Revoke`): deletes every attached key in key order in
    /// ONE revision (none if no key is attached) and removes the lease. Returns the number of
    /// keys deleted and the resulting store revision. Unknown id: [`MvccError::LeaseNotFound`].
    pub fn revoke_lease(&mut self, id: i64) -> Result<(i64, Revision), MvccError> {
        if !self.lease_exists(id)? {
            return Err(MvccError::LeaseNotFound);
        }
        let (deleted, rev) = self.revoke_lease_keys(id)?;
        let result = (|| -> Result<(), MvccError> {
            let mut leases = self.txn.open_table(LEASES)?;
            leases.remove(id.to_be_bytes().as_slice())?;
            Ok(())
        })();
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
        let mut ctx = ReqCtx::new(self.current_rev);
        let result = (|| -> Result<_, MvccError> {
            let mut t = open_tables(&self.txn)?;
            let keys = t.keys_with_lease(lease)?;
            for k in &keys {
                delete_key(&mut t, &mut ctx, k)?;
            }
            Ok(keys.len() as i64)
        })();
        let n = self.finish(ctx, result, None)?;
        Ok((n, self.current_rev))
    }

    /// A range read through this batch (sees everything applied so far).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.check_usable()?;
        let t = open_tables(&self.txn)?;
        range(&t, req, self.current_rev, self.first_rev())
    }

    /// Live keys attached to `lease`, as of this batch.
    pub fn keys_with_lease(&self, lease: i64) -> Result<Vec<Vec<u8>>, MvccError> {
        self.check_usable()?;
        open_tables(&self.txn)?.keys_with_lease(lease)
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
        let mut meta = self.txn.open_table(META)?;
        meta.insert(key, value)?;
        Ok(())
    }

    /// Reads a `meta` value as of this batch.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, MvccError> {
        let meta = self.txn.open_table(META)?;
        let value = meta.get(key)?.map(|g| g.value().to_vec());
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
            let _ = self.txn.abort();
            return Err(MvccError::Storage(format!(
                "refusing to commit a failed write batch: {cause}"
            )));
        }
        if self.revisions_dirty {
            let mut meta = self.txn.open_table(META)?;
            meta.insert(META_CURRENT_REV, self.current_rev.to_be_bytes().as_slice())?;
            if let Some(c) = self.compact_rev {
                meta.insert(META_COMPACT_REV, c.to_be_bytes().as_slice())?;
            }
        }
        self.txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        self.txn.commit()?;
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
) -> Result<KeyValue, MvccError> {
    let rev = ctx.next_rev();
    let old = t.latest.get(key)?.map(|g| g.value().to_vec());
    let (create_revision, version) = match &old {
        Some(raw) => {
            let (h, v) = decode_record(raw)?;
            ctx.note_pre(key, || Some(kv_of(key, &h, v)));
            // The superseded version moves, byte for byte, into history.
            t.history
                .insert(history_key(key, h.mod_rev).as_slice(), raw.as_slice())?;
            if h.lease != 0 && h.lease != lease {
                t.lease_keys.remove(lease_key(h.lease, key).as_slice())?;
            }
            (h.create_revision, h.version + 1)
        }
        None => {
            ctx.note_pre(key, || None);
            t.keys.insert(key, ())?;
            (rev.main, 1)
        }
    };
    if lease != 0 {
        t.lease_keys.insert(lease_key(lease, key).as_slice(), ())?;
    }
    let h = RecordHeader {
        create_revision,
        mod_rev: rev,
        version,
        lease,
    };
    t.latest.insert(key, encode_record(&h, value).as_slice())?;
    t.revs.insert(
        rev.encode().as_slice(),
        encode_rev_entry(KIND_PUT, key).as_slice(),
    )?;
    ctx.changes += 1;

    let kv = kv_of(key, &h, value);
    let prev_kv = if create_revision == rev.main {
        None
    } else {
        ctx.pre_kv(key)
    };
    ctx.events.push(Event {
        r#type: EventType::Put as i32,
        kv: Some(kv.clone()),
        prev_kv,
    });
    Ok(kv)
}

/// Deletes `key` (which must be live) at the next sub revision; false if it was not live.
fn delete_key(t: &mut RwTables<'_>, ctx: &mut ReqCtx, key: &[u8]) -> Result<bool, MvccError> {
    let rev = ctx.next_rev();
    let Some(raw) = t.latest.remove(key)?.map(|g| g.value().to_vec()) else {
        return Ok(false);
    };
    let (h, v) = decode_record(&raw)?;
    ctx.note_pre(key, || Some(kv_of(key, &h, v)));
    t.history
        .insert(history_key(key, h.mod_rev).as_slice(), raw.as_slice())?;
    t.history.insert(
        history_key(key, rev).as_slice(),
        [KIND_TOMBSTONE].as_slice(),
    )?;
    t.keys.remove(key)?;
    if h.lease != 0 {
        t.lease_keys.remove(lease_key(h.lease, key).as_slice())?;
    }
    t.revs.insert(
        rev.encode().as_slice(),
        encode_rev_entry(KIND_TOMBSTONE, key).as_slice(),
    )?;
    ctx.changes += 1;

    let kv = KeyValue {
        key: key.to_vec(),
        mod_revision: rev.main,
        ..Default::default()
    };
    let prev_kv = ctx.pre_kv(key);
    ctx.events.push(Event {
        r#type: EventType::Delete as i32,
        kv: Some(kv),
        prev_kv,
    });
    Ok(true)
}

fn kv_of(key: &[u8], h: &RecordHeader, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: h.create_revision,
        mod_revision: h.mod_rev.main,
        version: h.version,
        value: value.to_vec(),
        lease: h.lease,
    }
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
        t.latest
            .get(p.key.as_slice())?
            .map(|g| record_to_kv(&p.key, g.value()))
            .transpose()?
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
        t.range_at(&kr, cur, cur, true, 0)?.0
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
            Some(request_op::Request::RequestRange(r)) => Some(
                response_op::Response::ResponseRange(range(&*t, r, ctx.read_rev(), first_rev)?),
            ),
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
/// tombstone.
///
/// Walks `kv_revs` over `(previous, to]` only — whatever survived the previous compaction
/// and was not touched since is still the newest version of its key. Visiting change `e` of
/// key `k`, every older version of `k` is superseded by `e`, so it is deleted (amortised O(1)
/// per change); a tombstone `e` is deleted as well.
fn compact(
    t: &mut RwTables<'_>,
    previous: Option<Revision>,
    to: Revision,
) -> Result<(), MvccError> {
    let mut cursor = Rev::new(previous.map_or(0, |p| p.saturating_add(1)), 0);
    let end = Rev::new(to.saturating_add(1), 0).encode();
    loop {
        let mut chunk: Vec<(Rev, bool, Vec<u8>)> = Vec::with_capacity(COMPACTION_CHUNK);
        {
            let lo = cursor.encode();
            for entry in t.revs.range::<&[u8]>(lo.as_slice()..end.as_slice())? {
                let (k, v) = entry?;
                let (tombstone, key) = decode_rev_entry(v.value())?;
                chunk.push((Rev::decode(k.value())?, tombstone, key.to_vec()));
                if chunk.len() >= COMPACTION_CHUNK {
                    break;
                }
            }
        }
        let Some(&(last, _, _)) = chunk.last() else {
            break;
        };
        for (rev, tombstone, key) in &chunk {
            let lo = escaped_key(key);
            let hi = history_key(key, *rev);
            let mut older = Vec::new();
            for entry in t.history.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
                let (k, _) = entry?;
                older.push(k.value().to_vec());
            }
            for hk in older {
                let (_, r) = split_history_key(&hk)?;
                t.history.remove(hk.as_slice())?;
                t.revs.remove(r.encode().as_slice())?;
            }
            if *tombstone {
                t.history.remove(history_key(key, *rev).as_slice())?;
                t.revs.remove(rev.encode().as_slice())?;
            }
        }
        cursor = Rev::new(last.main, last.sub.saturating_add(1));
    }
    Ok(())
}
