//! Read logic shared by [`crate::ReadView`] (a redb read transaction) and
//! [`crate::WriteBatch`] (reads through the write transaction, seeing its own writes).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Bound;

use redb::ReadableTable;
use synod_proto::etcdserverpb::Compare;
use synod_proto::etcdserverpb::{compare, RangeRequest, RangeResponse, ResponseHeader};
use synod_proto::mvccpb::{event::EventType, Event, KeyValue};

use crate::error::MvccError;
use crate::layout::{
    decode_change, decode_index_entry, index_entry_is_live, IndexEntry, PutMeta, Rev,
};
use crate::Revision;

/// A table with byte-string keys and values.
pub(crate) trait BytesTable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> BytesTable for T {}

/// A table with byte-string keys and no values (a set).
pub(crate) trait SetTable: ReadableTable<&'static [u8], ()> {}
impl<T: ReadableTable<&'static [u8], ()>> SetTable for T {}

/// The key-value tables of the store (see [`crate::layout`]).
pub(crate) struct Tables<I, R, X> {
    pub index: I,
    pub revs: R,
    pub lease_keys: X,
}

/// Bounds of a redb range over user keys.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A set of user keys, as etcd's `key`/`range_end` pair describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key (`range_end` empty).
    Single(Vec<u8>),
    /// `[start, end)`, or every key `>= start` when `end` is `None` (`range_end == "\0"`).
    Span {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    pub fn from_request(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::Span {
                start: key.to_vec(),
                end: None,
            },
            end => KeyRange::Span {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    /// Whether the range can contain no key at all (`range_end <= key`).
    pub fn is_empty(&self) -> bool {
        match self {
            KeyRange::Single(_) => false,
            KeyRange::Span {
                start,
                end: Some(end),
            } => end <= start,
            KeyRange::Span { end: None, .. } => false,
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k == key,
            KeyRange::Span { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }

    /// User-key bounds for `kv_index`; `None` if the range is empty.
    fn bounds(&self) -> Option<KeyBounds<'_>> {
        if self.is_empty() {
            return None;
        }
        Some(match self {
            KeyRange::Single(k) => (Bound::Included(k.as_slice()), Bound::Included(k.as_slice())),
            KeyRange::Span { start, end } => (
                Bound::Included(start.as_slice()),
                end.as_ref()
                    .map_or(Bound::Unbounded, |e| Bound::Excluded(e.as_slice())),
            ),
        })
    }
}

pub(crate) fn header(revision: Revision) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

pub(crate) fn to_kv(key: &[u8], m: &PutMeta, value: &[u8]) -> KeyValue {
    owned_kv(key, m, value.to_vec())
}

/// [`to_kv`] taking the value it already owns.
fn owned_kv(key: &[u8], m: &PutMeta, value: Vec<u8>) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: m.create_revision,
        mod_revision: m.mod_rev.main,
        version: m.version,
        value,
        lease: m.lease,
    }
}

impl<I, R, X> Tables<I, R, X>
where
    I: BytesTable,
    R: BytesTable,
    X: SetTable,
{
    /// `key`'s `kv_index` entry: its newest change.
    pub fn index_entry(&self, key: &[u8]) -> Result<Option<IndexEntry>, MvccError> {
        match self.index.get(key)? {
            Some(g) => Ok(Some(decode_index_entry(g.value())?)),
            None => Ok(None),
        }
    }

    /// The value of the put stored at `rev` (named by `key`'s index entry or chain).
    pub fn value_at(&self, key: &[u8], rev: Rev) -> Result<Vec<u8>, MvccError> {
        let Some(g) = self.revs.get(rev.encode().as_slice())? else {
            return Err(MvccError::Corrupt(format!(
                "no kv_revs record at {rev:?} for a live version"
            )));
        };
        let change = decode_change(rev, g.value())?;
        match change.put {
            Some((_, value)) if change.key == key => Ok(value.to_vec()),
            _ => Err(MvccError::Corrupt(format!(
                "kv_revs record at {rev:?} is not the put the index names"
            ))),
        }
    }

    /// The live version of `key` as a `KeyValue` with its value, from its metadata.
    pub fn live_kv(&self, key: &[u8], m: &PutMeta) -> Result<KeyValue, MvccError> {
        Ok(owned_kv(key, m, self.value_at(key, m.mod_rev)?))
    }

    /// The current (latest) version of `key`.
    pub fn latest_kv(&self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        match self.index_entry(key)? {
            Some(IndexEntry::Put(m)) => Ok(Some(self.live_kv(key, &m)?)),
            _ => Ok(None),
        }
    }

    pub fn latest_exists(&self, key: &[u8]) -> Result<bool, MvccError> {
        Ok(matches!(self.index_entry(key)?, Some(IndexEntry::Put(_))))
    }

    /// The version of `key` visible at `at`, walking its chain from the change at `start`
    /// (the key's newest change not yet ruled out); `None` for a deletion, a record a
    /// compaction removed or the chain's end. Only meaningful for `at` at or above the
    /// compaction revision (see [`crate::layout`]).
    fn resolve_from(
        &self,
        key: &[u8],
        start: Option<Rev>,
        at: Revision,
        want_value: bool,
    ) -> Result<Option<KeyValue>, MvccError> {
        let mut next = start;
        while let Some(rev) = next {
            let Some(g) = self.revs.get(rev.encode().as_slice())? else {
                // Deleted by a compaction: a tombstone at or below it.
                return Ok(None);
            };
            let change = decode_change(rev, g.value())?;
            if change.key != key {
                return Err(MvccError::Corrupt(format!(
                    "kv_revs record at {rev:?} belongs to another key"
                )));
            }
            if rev.main <= at {
                return Ok(change
                    .put
                    .map(|(m, v)| to_kv(key, &m, if want_value { v } else { &[] })));
            }
            next = change.prev;
        }
        Ok(None)
    }

    /// The version of `key` with index entry `entry` visible at `at`.
    fn resolve_entry(
        &self,
        key: &[u8],
        entry: &IndexEntry,
        at: Revision,
        want_value: bool,
    ) -> Result<Option<KeyValue>, MvccError> {
        match entry {
            IndexEntry::Put(m) if m.mod_rev.main <= at => Ok(Some(if want_value {
                self.live_kv(key, m)?
            } else {
                to_kv(key, m, &[])
            })),
            IndexEntry::Tombstone(r) if r.main <= at => Ok(None),
            _ => self.resolve_from(key, Some(entry.rev()), at, want_value),
        }
    }

    /// Live keys in `kr` at the latest revision, in key order.
    pub fn latest_keys_in(&self, kr: &KeyRange) -> Result<Vec<Vec<u8>>, MvccError> {
        let Some(bounds) = kr.bounds() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in self.index.range::<&[u8]>(bounds)? {
            let (k, v) = entry?;
            if index_entry_is_live(v.value())? {
                out.push(k.value().to_vec());
            }
        }
        Ok(out)
    }

    /// Number of live keys in `kr` at the latest revision (walks the index; the whole
    /// keyspace is the `live` counter).
    pub fn count_latest(&self, kr: &KeyRange, live: u64) -> Result<i64, MvccError> {
        let to_i64 =
            |n: u64| i64::try_from(n).map_err(|_| MvccError::Corrupt("key count overflow".into()));
        // The whole keyspace ("" or "\0" to "\0").
        if let KeyRange::Span { start, end: None } = kr {
            if start.is_empty() || start.as_slice() == [0] {
                let mut n = live;
                if !start.is_empty() && self.latest_exists(&[])? {
                    n = n.saturating_sub(1);
                }
                return to_i64(n);
            }
        }
        let Some(bounds) = kr.bounds() else {
            return Ok(0);
        };
        let mut n = 0u64;
        for entry in self.index.range::<&[u8]>(bounds)? {
            let (_, v) = entry?;
            if index_entry_is_live(v.value())? {
                n += 1;
            }
        }
        to_i64(n)
    }

    /// The key-values in `kr` visible at revision `at`, and how many keys the range holds
    /// at that revision. Materialises at most `fetch_limit` key-values (0 = all), none if
    /// `!want_kvs`, and reads their values only if `want_values`; the count always covers
    /// the whole range. `live` is the store's live key count at `cur`.
    #[allow(clippy::too_many_arguments)]
    pub fn range_at(
        &self,
        kr: &KeyRange,
        at: Revision,
        cur: Revision,
        live: u64,
        want_kvs: bool,
        want_values: bool,
        fetch_limit: usize,
    ) -> Result<(Vec<KeyValue>, i64), MvccError> {
        let Some(bounds) = kr.bounds() else {
            return Ok((Vec::new(), 0));
        };
        let take = |n: usize| want_kvs && (fetch_limit == 0 || n < fetch_limit);
        let at = at.min(cur);

        if let KeyRange::Single(key) = kr {
            let found = match self.index_entry(key)? {
                Some(entry) => self.resolve_entry(key, &entry, at, want_kvs && want_values)?,
                None => None,
            };
            return Ok(match found {
                Some(kv) if want_kvs => (vec![kv], 1),
                Some(_) => (Vec::new(), 1),
                None => (Vec::new(), 0),
            });
        }

        if at >= cur {
            // Latest revision: the index, and each value by its revision.
            let mut kvs = Vec::new();
            if want_kvs {
                for entry in self.index.range::<&[u8]>(bounds)? {
                    if !take(kvs.len()) {
                        break;
                    }
                    let (k, v) = entry?;
                    let entry = decode_index_entry(v.value())?;
                    if let Some(kv) = self.resolve_entry(k.value(), &entry, at, want_values)? {
                        kvs.push(kv);
                    }
                }
                if fetch_limit == 0 || kvs.len() < fetch_limit {
                    let n = kvs.len() as i64;
                    return Ok((kvs, n));
                }
            }
            let count = self.count_latest(kr, live)?;
            return Ok((kvs, count));
        }

        // Older revision: every key the index knows in the range, resolved at `at`.
        let mut kvs = Vec::new();
        let mut count = 0i64;
        for entry in self.index.range::<&[u8]>(bounds)? {
            let (k, v) = entry?;
            let entry = decode_index_entry(v.value())?;
            let want = take(kvs.len());
            if let Some(kv) = self.resolve_entry(k.value(), &entry, at, want && want_values)? {
                count += 1;
                if want {
                    kvs.push(kv);
                }
            }
        }
        Ok((kvs, count))
    }

    /// Events with main revision in `[from, to]`, in revision order (see
    /// [`crate::ReadView::events_between`]).
    pub fn events_between(
        &self,
        from: Revision,
        to: Revision,
        limit: usize,
        with_prev_kv: bool,
        cur: Revision,
        first_rev: Revision,
    ) -> Result<Vec<Event>, MvccError> {
        let from = from.max(1);
        let to = to.min(cur);
        let mut events: Vec<Event> = Vec::new();
        if to < from {
            return Ok(events);
        }
        let lo = Rev::new(from, 0).encode();
        let hi = Rev::new(to.saturating_add(1), 0).encode();
        let mut last_main = None;
        for entry in self.revs.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
            let (k, v) = entry?;
            let rev = Rev::decode(k.value())?;
            if limit > 0 && events.len() >= limit && last_main != Some(rev.main) {
                break;
            }
            last_main = Some(rev.main);
            let change = decode_change(rev, v.value())?;
            let (ty, kv) = match change.put {
                Some((m, value)) => (EventType::Put, to_kv(change.key, &m, value)),
                None => {
                    let kv = KeyValue {
                        key: change.key.to_vec(),
                        mod_revision: rev.main,
                        ..Default::default()
                    };
                    (EventType::Delete, kv)
                }
            };
            let is_create = ty == EventType::Put && kv.create_revision == kv.mod_revision;
            let prev_kv = if with_prev_kv && !is_create && rev.main > first_rev {
                // The key at the revision before, from this change's own chain.
                self.resolve_from(change.key, change.prev, rev.main - 1, true)?
            } else {
                None
            };
            events.push(Event {
                r#type: ty as i32,
                kv: Some(kv),
                prev_kv,
            });
        }
        Ok(events)
    }

    /// Live keys attached to `lease`, in key order.
    pub fn keys_with_lease(&self, lease: i64) -> Result<Vec<Vec<u8>>, MvccError> {
        let lo = lease.to_be_bytes();
        let mut out = Vec::new();
        // The next 8-byte prefix in byte order (not `lease + 1`: a negative id's bytes sort
        // above every positive id's).
        let iter = match u64::from_be_bytes(lo).checked_add(1) {
            Some(next) => {
                let hi = next.to_be_bytes();
                self.lease_keys.range::<&[u8]>(&lo[..]..&hi[..])?
            }
            None => self.lease_keys.range::<&[u8]>(&lo[..]..)?,
        };
        for entry in iter {
            let (k, _) = entry?;
            let raw = k.value();
            if raw.len() < 8 {
                return Err(MvccError::Corrupt(
                    "malformed kv_lease_keys key".to_string(),
                ));
            }
            out.push(raw[8..].to_vec());
        }
        Ok(out)
    }

    /// etcd 3.4 `applyCompare`, against the latest revision.
    pub fn compare(&self, c: &Compare) -> Result<bool, MvccError> {
        let kr = KeyRange::from_request(&c.key, &c.range_end);
        let by_value = c.target == compare::CompareTarget::Value as i32;
        let mut seen = false;
        if let Some(bounds) = kr.bounds() {
            for entry in self.index.range::<&[u8]>(bounds)? {
                let (k, v) = entry?;
                let IndexEntry::Put(m) = decode_index_entry(v.value())? else {
                    continue;
                };
                seen = true;
                let value = if by_value {
                    self.value_at(k.value(), m.mod_rev)?
                } else {
                    Vec::new()
                };
                if !compare_kv(c, &m, &value) {
                    return Ok(false);
                }
            }
        }
        if seen {
            return Ok(true);
        }
        if by_value {
            // A missing key has no value; etcd fails every value comparison on it.
            return Ok(false);
        }
        let zero = PutMeta {
            create_revision: 0,
            mod_rev: Rev::new(0, 0),
            version: 0,
            lease: 0,
        };
        Ok(compare_kv(c, &zero, &[]))
    }
}

/// etcd 3.4 `compareKV`: an absent or mismatched `target_union` compares against the zero
/// value; an unknown target compares as equal; an unknown result is true.
fn compare_kv(c: &Compare, h: &PutMeta, value: &[u8]) -> bool {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let ord = match T::try_from(c.target) {
        Ok(T::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(U::Value(v)) => v,
                _ => &[],
            };
            value.cmp(want)
        }
        Ok(T::Create) => {
            let want = match c.target_union {
                Some(U::CreateRevision(r)) => r,
                _ => 0,
            };
            h.create_revision.cmp(&want)
        }
        Ok(T::Mod) => {
            let want = match c.target_union {
                Some(U::ModRevision(r)) => r,
                _ => 0,
            };
            h.mod_rev.main.cmp(&want)
        }
        Ok(T::Version) => {
            let want = match c.target_union {
                Some(U::Version(r)) => r,
                _ => 0,
            };
            h.version.cmp(&want)
        }
        Ok(T::Lease) => {
            let want = match c.target_union {
                Some(U::Lease(r)) => r,
                _ => 0,
            };
            h.lease.cmp(&want)
        }
        Err(_) => Ordering::Equal,
    };
    match R::try_from(c.result) {
        Ok(R::Equal) => ord == Ordering::Equal,
        Ok(R::NotEqual) => ord != Ordering::Equal,
        Ok(R::Greater) => ord == Ordering::Greater,
        Ok(R::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// etcd 3.4 `applierV3backend.Range` over `tables`, reading at `cur` (the revision the
/// response header reports) with compaction floor `first_rev` (`-1` if never compacted).
pub(crate) fn range<I, R, X>(
    tables: &Tables<I, R, X>,
    req: &RangeRequest,
    cur: Revision,
    first_rev: Revision,
    live: u64,
) -> Result<RangeResponse, MvccError>
where
    I: BytesTable,
    R: BytesTable,
    X: SetTable,
{
    let mut at = req.revision;
    if at > cur {
        return Err(MvccError::FutureRevision);
    }
    if at <= 0 {
        at = cur;
    }
    if at < first_rev {
        return Err(MvccError::Compacted);
    }

    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // etcd fetches everything when sorting or filtering, otherwise limit+1 (for `more`).
    let fetch_limit = if req.sort_order != 0 || filtered || req.limit <= 0 {
        0
    } else {
        usize::try_from(req.limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    };

    let kr = KeyRange::from_request(&req.key, &req.range_end);
    // Values are read only to be returned, or to sort by (etcd sorts before it drops them).
    let want_values = !req.keys_only
        || req.sort_target == synod_proto::etcdserverpb::range_request::SortTarget::Value as i32;
    let (mut kvs, count) = tables.range_at(
        &kr,
        at,
        cur,
        live,
        !req.count_only,
        want_values,
        fetch_limit,
    )?;

    if req.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
    }

    sort_kvs(&mut kvs, req.sort_order, req.sort_target);

    let mut more = false;
    if req.limit > 0 {
        let limit = usize::try_from(req.limit).unwrap_or(usize::MAX);
        if kvs.len() > limit {
            kvs.truncate(limit);
            more = true;
        }
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse {
        header: header(cur),
        kvs,
        more,
        count,
    })
}

/// etcd 3.4's sort step: a non-KEY target with order NONE sorts ascending; an unknown order
/// or target leaves the (key-ordered) result alone. Sorting is stable.
fn sort_kvs(kvs: &mut [KeyValue], order: i32, target: i32) {
    use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
    let order = if target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
        SortOrder::Ascend as i32
    } else {
        order
    };
    let cmp: fn(&KeyValue, &KeyValue) -> Ordering = match SortTarget::try_from(target) {
        Ok(SortTarget::Key) => |a, b| a.key.cmp(&b.key),
        Ok(SortTarget::Version) => |a, b| a.version.cmp(&b.version),
        Ok(SortTarget::Create) => |a, b| a.create_revision.cmp(&b.create_revision),
        Ok(SortTarget::Mod) => |a, b| a.mod_revision.cmp(&b.mod_revision),
        Ok(SortTarget::Value) => |a, b| a.value.cmp(&b.value),
        Err(_) => return,
    };
    if order == SortOrder::Ascend as i32 {
        kvs.sort_by(cmp);
    } else if order == SortOrder::Descend as i32 {
        kvs.sort_by(|a, b| cmp(b, a));
    }
}

/// Pre-request state of keys touched by a write request, for `prev_kv`s: the metadata of
/// each key's live version before the request (its value is read by revision if needed).
pub(crate) type PreState = HashMap<Vec<u8>, Option<PutMeta>>;
