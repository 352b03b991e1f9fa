//! etcd's `HashKV`: a CRC-32C over the key-value history as etcd's backend stores it, so that
//! the same writes give the same hash on Synod as on etcd 3.4 (and members can be compared
//! with `etcdctl endpoint hashkv`).
//!
//! etcd 3.4 (`mvcc.store.HashByRev`) hashes the bucket name `key`, then every entry of that
//! bucket with main revision `<= rev`, in revision order: the bucket key (`main` BE ‖ `_` ‖
//! `sub` BE, plus `t` for a deletion) and the value (the protobuf `mvccpb.KeyValue`: the whole
//! key-value for a put, only the key for a deletion). Entries at or below the compaction
//! revision count only if they are still the key's live version at `rev` (unless no key is
//! live at `rev`), which makes the hash independent of how far a compaction has progressed.
//!
//! In this store, what is left at or below the compaction revision is exactly each key's live
//! version there (see [`crate::layout`]); such a record stops being live at `rev` when a later
//! change at or below `rev` links back to it. This module only reads; it never decides what is
//! kept.

use std::collections::HashSet;

use prost::Message;
use synod_proto::mvccpb::KeyValue;

use crate::error::MvccError;
use crate::layout::{decode_change, Change, Rev};
use crate::read::{to_kv, BytesTable, SetTable, Tables};
use crate::Revision;

/// etcd's backend bucket holding the key-value history.
const KEY_BUCKET: &[u8] = b"key";
/// etcd's mark after the bucket key of a deletion.
const TOMBSTONE_MARK: u8 = b't';

/// The hash of the history up to `rev` (not above the current revision), given the compaction
/// revision `compact` (`-1` if never compacted). A negative `rev` covers no entry (etcd hashes
/// the bucket name alone).
pub(crate) fn hash_kv<I, R, X>(
    t: &Tables<I, R, X>,
    rev: Revision,
    compact: Revision,
) -> Result<u32, MvccError>
where
    I: BytesTable,
    R: BytesTable,
    X: SetTable,
{
    let mut crc = crc32c::crc32c_append(0, KEY_BUCKET);
    if rev < 1 {
        return Ok(crc);
    }
    let upper = Rev::new(rev.saturating_add(1), 0).encode();
    let lower = Rev::new(compact.saturating_add(1).max(0), 0).encode();
    let mut scratch = Scratch::default();

    // Changes after the compaction, hashed on their own (joined after the older ones below),
    // with the versions they supersede and whether any key is live at `rev` among them (a put
    // nothing later up to `rev` supersedes).
    let (mut crc_after, mut len_after) = (0u32, 0usize);
    let mut superseded: HashSet<Rev> = HashSet::new();
    let mut puts_after: Vec<Rev> = Vec::new();
    for entry in t.revs.range::<&[u8]>(lower.as_slice()..upper.as_slice())? {
        let (k, v) = entry?;
        let r = Rev::decode(k.value())?;
        let change = decode_change(r, v.value())?;
        if let Some(prev) = change.prev {
            superseded.insert(prev);
        }
        if change.put.is_some() {
            puts_after.push(r);
        }
        let (c, n) = scratch.hash(crc_after, r, &change)?;
        crc_after = c;
        len_after += n;
    }
    let mut live_at_rev = puts_after.iter().any(|r| !superseded.contains(r));
    if !live_at_rev {
        for entry in t.revs.range::<&[u8]>(..lower.as_slice())? {
            let (k, _) = entry?;
            if !superseded.contains(&Rev::decode(k.value())?) {
                live_at_rev = true;
                break;
            }
        }
    }

    // At or below the compaction: each key's version live there, if it still is at `rev` (or
    // if no key is live at `rev`: etcd then skips nothing).
    for entry in t.revs.range::<&[u8]>(..lower.as_slice())? {
        let (k, v) = entry?;
        let r = Rev::decode(k.value())?;
        if live_at_rev && superseded.contains(&r) {
            continue;
        }
        crc = scratch.hash(crc, r, &decode_change(r, v.value())?)?.0;
    }
    Ok(crc32c::crc32c_combine(crc, crc_after, len_after))
}

/// Buffers for one entry as etcd's backend holds it.
#[derive(Default)]
struct Scratch {
    bucket_key: Vec<u8>,
    value: Vec<u8>,
}

impl Scratch {
    /// Appends the change stored under `r` to `crc`; returns the new CRC and how many bytes
    /// it covered.
    fn hash(&mut self, crc: u32, r: Rev, change: &Change<'_>) -> Result<(u32, usize), MvccError> {
        self.bucket_key.clear();
        self.bucket_key.extend_from_slice(&r.main.to_be_bytes());
        self.bucket_key.push(b'_');
        self.bucket_key.extend_from_slice(&r.sub.to_be_bytes());
        let kv = match change.put {
            Some((m, v)) => to_kv(change.key, &m, v),
            None => {
                self.bucket_key.push(TOMBSTONE_MARK);
                KeyValue {
                    key: change.key.to_vec(),
                    ..Default::default()
                }
            }
        };
        self.value.clear();
        kv.encode(&mut self.value)
            .map_err(|e| MvccError::Storage(format!("encoding a key-value to hash: {e}")))?;
        let crc = crc32c::crc32c_append(crc, &self.bucket_key);
        let crc = crc32c::crc32c_append(crc, &self.value);
        Ok((crc, self.bucket_key.len() + self.value.len()))
    }
}
