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
    decode_record, decode_rev_entry, decode_stored, escaped_key, escaped_key_successor,
    history_key, history_user_key, RecordHeader, Rev, Stored,
};
use crate::Revision;

/// A table with byte-string keys and values.
pub(crate) trait BytesTable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> BytesTable for T {}

/// A table with byte-string keys and no values (a set).
pub(crate) trait SetTable: ReadableTable<&'static [u8], ()> {}
impl<T: ReadableTable<&'static [u8], ()>> SetTable for T {}

/// The key-value tables of the store (see [`crate::layout`]).
pub(crate) struct Tables<L, K, H, R, X> {
    pub latest: L,
    pub keys: K,
    pub history: H,
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

    /// User-key bounds for `kv_latest` / `kv_keys`; `None` if the range is empty.
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

    /// Byte bounds `[lo, hi)` of the range's entries in `kv_history`.
    fn history_bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            KeyRange::Single(k) => (escaped_key(k), Some(escaped_key_successor(k))),
            KeyRange::Span { start, end } => (escaped_key(start), end.as_deref().map(escaped_key)),
        }
    }
}

pub(crate) fn header(revision: Revision) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

fn to_kv(key: &[u8], h: &RecordHeader, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: h.create_revision,
        mod_revision: h.mod_rev.main,
        version: h.version,
        value: value.to_vec(),
        lease: h.lease,
    }
}

/// Decodes a stored put record into a `KeyValue`.
pub(crate) fn record_to_kv(key: &[u8], raw: &[u8]) -> Result<KeyValue, MvccError> {
    let (h, v) = decode_record(raw)?;
    Ok(to_kv(key, &h, v))
}

impl<L, K, H, R, X> Tables<L, K, H, R, X>
where
    L: BytesTable,
    K: SetTable,
    H: BytesTable,
    R: BytesTable,
    X: SetTable,
{
    /// The current (latest) version of `key`.
    pub fn latest_kv(&self, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        match self.latest.get(key)? {
            Some(g) => Ok(Some(record_to_kv(key, g.value())?)),
            None => Ok(None),
        }
    }

    pub fn latest_exists(&self, key: &[u8]) -> Result<bool, MvccError> {
        Ok(self.keys.get(key)?.is_some())
    }

    /// The newest `kv_history` entry of `key` with main revision `<= at`, if it is a put.
    /// Without `want_value` the returned key-value has an empty value (existence check).
    fn history_kv_at(
        &self,
        key: &[u8],
        at: Revision,
        want_value: bool,
    ) -> Result<Option<KeyValue>, MvccError> {
        if at < 0 {
            return Ok(None);
        }
        let lo = escaped_key(key);
        let hi = history_key(key, Rev::new(at.saturating_add(1), 0));
        let mut iter = self.history.range::<&[u8]>(lo.as_slice()..hi.as_slice())?;
        match iter.next_back() {
            Some(entry) => {
                let (_, v) = entry?;
                match decode_stored(v.value())? {
                    Stored::Put(h, value) => {
                        Ok(Some(to_kv(key, &h, if want_value { value } else { &[] })))
                    }
                    Stored::Tombstone => Ok(None),
                }
            }
            None => Ok(None),
        }
    }

    /// The version of `key` visible at revision `at` (`at >= cur` means the latest).
    pub fn kv_at(
        &self,
        key: &[u8],
        at: Revision,
        cur: Revision,
    ) -> Result<Option<KeyValue>, MvccError> {
        if let Some(g) = self.latest.get(key)? {
            let (h, v) = decode_record(g.value())?;
            if at >= cur || h.mod_rev.main <= at {
                return Ok(Some(to_kv(key, &h, v)));
            }
        } else if at >= cur {
            return Ok(None);
        }
        self.history_kv_at(key, at, true)
    }

    /// Live keys in `kr` at the latest revision, in key order.
    pub fn latest_keys_in(&self, kr: &KeyRange) -> Result<Vec<Vec<u8>>, MvccError> {
        let Some(bounds) = kr.bounds() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in self.keys.range::<&[u8]>(bounds)? {
            let (k, _) = entry?;
            out.push(k.value().to_vec());
        }
        Ok(out)
    }

    /// Number of live keys in `kr` at the latest revision (walks the key-only table).
    pub fn count_latest(&self, kr: &KeyRange) -> Result<i64, MvccError> {
        // The whole keyspace ("" or "\0" to "\0"): the table length is O(1).
        if let KeyRange::Span { start, end: None } = kr {
            if start.is_empty() || start.as_slice() == [0] {
                let mut n = self.keys.len()?;
                if !start.is_empty() && self.keys.get(&[][..])?.is_some() {
                    n -= 1;
                }
                return i64::try_from(n)
                    .map_err(|_| MvccError::Corrupt("key count overflow".into()));
            }
        }
        let Some(bounds) = kr.bounds() else {
            return Ok(0);
        };
        let mut n = 0i64;
        for entry in self.keys.range::<&[u8]>(bounds)? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// The key-values in `kr` visible at revision `at`, and how many keys the range holds
    /// at that revision. Materialises at most `fetch_limit` key-values (0 = all), none if
    /// `!want_kvs`; the count always covers the whole range.
    pub fn range_at(
        &self,
        kr: &KeyRange,
        at: Revision,
        cur: Revision,
        want_kvs: bool,
        fetch_limit: usize,
    ) -> Result<(Vec<KeyValue>, i64), MvccError> {
        let Some(bounds) = kr.bounds() else {
            return Ok((Vec::new(), 0));
        };
        let take = |n: usize| want_kvs && (fetch_limit == 0 || n < fetch_limit);

        if let KeyRange::Single(key) = kr {
            return Ok(match self.kv_at(key, at, cur)? {
                Some(kv) if want_kvs => (vec![kv], 1),
                Some(_) => (Vec::new(), 1),
                None => (Vec::new(), 0),
            });
        }

        if at >= cur {
            // Latest revision: kv_latest (values) and kv_keys (count) only.
            let mut kvs = Vec::new();
            if want_kvs {
                for entry in self.latest.range::<&[u8]>(bounds)? {
                    if !take(kvs.len()) {
                        break;
                    }
                    let (k, v) = entry?;
                    kvs.push(record_to_kv(k.value(), v.value())?);
                }
                if fetch_limit == 0 || kvs.len() < fetch_limit {
                    let n = kvs.len() as i64;
                    return Ok((kvs, n));
                }
            }
            let count = self.count_latest(kr)?;
            return Ok((kvs, count));
        }

        // Older revision: merge the distinct keys of kv_latest and kv_history in the range
        // and resolve each at `at`.
        let mut kvs = Vec::new();
        let mut count = 0i64;
        let mut latest_iter = self.latest.range::<&[u8]>(bounds)?;
        let mut latest_next = latest_iter.next().transpose()?;
        let (hist_lo, hist_hi) = kr.history_bounds();
        let mut hist_next = self.next_history_key(&hist_lo, hist_hi.as_deref())?;
        loop {
            let order = match (&latest_next, &hist_next) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((lk, _)), Some(hk)) => lk.value().cmp(hk.as_slice()),
            };
            // Resolved from kv_latest if its record is old enough; otherwise from history.
            let mut resolved = false;
            if order != Ordering::Greater {
                if let Some((lk, lv)) = &latest_next {
                    let (h, v) = decode_record(lv.value())?;
                    if h.mod_rev.main <= at {
                        resolved = true;
                        count += 1;
                        if take(kvs.len()) {
                            kvs.push(to_kv(lk.value(), &h, v));
                        }
                    }
                }
            }
            let key_for_history = if order != Ordering::Less {
                hist_next.take()
            } else {
                None
            };
            if !resolved {
                if let Some(hk) = &key_for_history {
                    let want = take(kvs.len());
                    if let Some(kv) = self.history_kv_at(hk, at, want)? {
                        count += 1;
                        if want {
                            kvs.push(kv);
                        }
                    }
                }
            }
            if order != Ordering::Greater {
                latest_next = latest_iter.next().transpose()?;
            }
            if let Some(hk) = key_for_history {
                let next = escaped_key_successor(&hk);
                hist_next = self.next_history_key(&next, hist_hi.as_deref())?;
            }
        }
        Ok((kvs, count))
    }

    /// The user key of the first `kv_history` entry in `[from, hi)`.
    fn next_history_key(
        &self,
        from: &[u8],
        hi: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, MvccError> {
        let upper = hi.map_or(Bound::Unbounded, Bound::Excluded);
        let mut iter = self
            .history
            .range::<&[u8]>((Bound::Included(from), upper))?;
        match iter.next() {
            Some(entry) => {
                let (k, _) = entry?;
                Ok(Some(history_user_key(k.value())?))
            }
            None => Ok(None),
        }
    }

    /// The put stored at exactly revision `rev` for `key` (for events).
    fn put_at_rev(&self, key: &[u8], rev: Rev) -> Result<KeyValue, MvccError> {
        if let Some(g) = self.latest.get(key)? {
            let (h, v) = decode_record(g.value())?;
            if h.mod_rev == rev {
                return Ok(to_kv(key, &h, v));
            }
        }
        match self.history.get(history_key(key, rev).as_slice())? {
            Some(g) => match decode_stored(g.value())? {
                Stored::Put(h, v) => Ok(to_kv(key, &h, v)),
                Stored::Tombstone => Err(MvccError::Corrupt(format!(
                    "kv_revs names a put at {rev:?} but kv_history holds a tombstone"
                ))),
            },
            None => Err(MvccError::Corrupt(format!(
                "no record for revision {rev:?}"
            ))),
        }
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
            let (tombstone, key) = decode_rev_entry(v.value())?;
            let (ty, kv) = if tombstone {
                let kv = KeyValue {
                    key: key.to_vec(),
                    mod_revision: rev.main,
                    ..Default::default()
                };
                (EventType::Delete, kv)
            } else {
                (EventType::Put, self.put_at_rev(key, rev)?)
            };
            let is_create = ty == EventType::Put && kv.create_revision == kv.mod_revision;
            let prev_kv = if with_prev_kv && !is_create && rev.main > first_rev {
                self.kv_at(key, rev.main - 1, cur)?
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
        let mut seen = false;
        if let Some(bounds) = kr.bounds() {
            for entry in self.latest.range::<&[u8]>(bounds)? {
                let (_, v) = entry?;
                let (h, value) = decode_record(v.value())?;
                seen = true;
                if !compare_kv(c, &h, value) {
                    return Ok(false);
                }
            }
        }
        if seen {
            return Ok(true);
        }
        if c.target == compare::CompareTarget::Value as i32 {
            // A missing key has no value; etcd fails every value comparison on it.
            return Ok(false);
        }
        let zero = RecordHeader {
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
fn compare_kv(c: &Compare, h: &RecordHeader, value: &[u8]) -> bool {
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
pub(crate) fn range<L, K, H, R, X>(
    tables: &Tables<L, K, H, R, X>,
    req: &RangeRequest,
    cur: Revision,
    first_rev: Revision,
) -> Result<RangeResponse, MvccError>
where
    L: BytesTable,
    K: SetTable,
    H: BytesTable,
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
    let (mut kvs, count) = tables.range_at(&kr, at, cur, !req.count_only, fetch_limit)?;

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

/// Pre-request state of keys touched by a write request, for watch events' `prev_kv`.
pub(crate) type PreState = HashMap<Vec<u8>, Option<KeyValue>>;
