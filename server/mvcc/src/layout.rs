//! # On-disk layout of the MVCC store
//!
//! The state machine lives in a single [redb](https://docs.rs/redb) file. Every table uses
//! raw byte strings for keys and values (redb compares `&[u8]` keys with `memcmp`), so the
//! byte encodings below *are* the format: they do not depend on redb's own tuple or integer
//! encodings.
//!
//! The split follows etcd's `mvcc` package: a *key index* (etcd keeps its `treeIndex` in
//! memory; here it is a small B-tree on disk) names each key's newest change, and the changes
//! themselves are stored by revision (etcd's `key` bucket), so a put appends to the revision
//! tree and rewrites one small index entry. That keeps the pages a random put dirties to one
//! leaf of a dense tree (8–12-byte entries: about 50 MB of index at 1M keys) instead of a page
//! of values.
//!
//! ## Tables
//!
//! | table            | key                                  | value                         |
//! |------------------|--------------------------------------|-------------------------------|
//! | `meta`           | `&str` name                          | bytes (see *Meta keys*)       |
//! | `kv_index`       | user key (raw bytes)                 | *index entry*                 |
//! | `kv_revs`        | *revision*                           | *change record*               |
//! | `kv_lease_keys`  | lease id (i64 BE) ‖ user key         | `()`                          |
//! | `leases`         | lease id (i64 BE)                    | *lease record* (see below)    |
//!
//! * **`kv_revs`** holds every change still on disk, in revision order: one record per
//!   (main, sub) revision with the user key, the revision of the key's previous change (a
//!   per-key chain back through history), and for a put its metadata and value. A change is
//!   written once, when it is made, and never rewritten; compaction deletes records.
//! * **`kv_index`** has one entry per key that has a change in `kv_revs` newer than the
//!   last compaction or is live: the key's newest change — for a put its revision and
//!   metadata (everything a read needs but the value), for a deletion a *tombstone* with the
//!   deletion's revision. Reads at the current revision walk this table and fetch values
//!   from `kv_revs` by revision; `count` walks it alone.
//! * The state of key `k` at revision `R` (`R` not below the compaction revision): start at
//!   `k`'s index entry and follow the chain (each record's previous change) to the newest
//!   change with main revision `<= R`. It is a put: that version; a tombstone, a missing
//!   record (a tombstone compaction removed) or the chain's end: no key.
//! * **`kv_lease_keys`** indexes live keys by attached lease, for lease revocation.
//! * **`leases`** holds every granted lease (etcd's `lease` bucket): exactly the ids a put may
//!   attach. A lease is added by a replicated grant and removed, together with its keys (one
//!   revision), by a replicated revoke. Deadlines are not state (the embedding layer's leader
//!   keeps them in memory); what is stored is the granted TTL and, once the leader has
//!   checkpointed the lease, its remaining TTL as of that checkpoint (etcd's `remainingTTL`),
//!   from which a whole-cluster restart resumes. Keys are exactly 8 bytes.
//!
//! ## Compaction
//!
//! Compaction at `C` walks `kv_revs` over `(previous compaction, C]`. For each change, the
//! key's previous change is superseded at `C` and its record is deleted; a deletion's own
//! record is deleted too, and so is the key's index entry if that tombstone is still its
//! newest change. What remains at or below `C` is exactly the newest version of each key live
//! at `C`, as etcd keeps. A chain may then point at a deleted record: that only ever happens
//! where the state is "no key" (see above).
//!
//! ## Encodings
//!
//! *varint* is protobuf's base-128 varint of a `u64` (`prost::encoding`); an `i64` (lease
//! ids) is written as its two's-complement `u64`.
//!
//! * **revision** (`kv_revs` key) — 16 bytes: `main: i64 BE` ‖ `sub: i64 BE`. `main` is the
//!   store revision of the write request, `sub` the index of the change inside it
//!   (0, 1, 2, ...). Revisions are never negative, so the bytes sort like the numbers.
//! * **index entry** — put: `0x01` ‖ varint mod main ‖ varint mod sub ‖ varint
//!   create_revision ‖ varint version ‖ varint lease. Tombstone: `0x02` ‖ varint main ‖
//!   varint sub of the deletion. Typically 8–12 bytes.
//! * **change record** — put: `0x01` ‖ varint key length ‖ key ‖ varint previous main ‖
//!   varint previous sub ‖ varint create_revision ‖ varint version ‖ varint lease ‖ the value
//!   (the rest). Deletion: `0x02` ‖ varint key length ‖ key ‖ varint previous main ‖ varint
//!   previous sub. A previous main of 0 means none (revision 0 never holds a change).
//! * **lease record** (`leases` value) — one of two lengths:
//!   * 8 bytes: `granted TTL: i64 BE`. No checkpoint since the grant: the remaining TTL is
//!     the full TTL. A grant writes this form, as does a checkpoint whose remaining TTL is
//!     `<= 0` (etcd's "unset").
//!   * 16 bytes: `granted TTL: i64 BE` ‖ `remaining TTL: i64 BE` (seconds, `> 0`), written by
//!     a lease checkpoint.
//!
//! Why hand-rolled records instead of a prost-encoded `mvccpb.KeyValue`: the record must also
//! carry the sub revision and the chain (not `KeyValue` fields), the index entry must not
//! carry the value, and decoding cannot allocate or fail in surprising ways — a wrong length,
//! varint or kind byte is reported as `MvccError::Corrupt`.
//!
//! ## Meta keys (`meta` table)
//!
//! * `mvcc/format` — one byte, the layout version (currently `2`). Version 1 (development
//!   builds before November 2026: `kv_latest`, `kv_keys`, `kv_history`) is refused by name.
//! * `mvcc/current_revision` — `i64 BE`, the store revision (starts at 1 with no keys).
//! * `mvcc/compact_revision` — `i64 BE`, the last compaction revision; absent if the store
//!   was never compacted.
//! * `mvcc/live_keys` — `u64 BE`, the number of live keys (put entries of `kv_index`), so
//!   that counting the whole keyspace does not walk it. Absent means 0.
//! * every other name is free for the embedding layer (`WriteBatch::set_meta`, e.g. the
//!   raft layer's `applied` index); names starting with `mvcc/` are reserved.
//!
//! ## Snapshots
//!
//! `MvccStore::snapshot_bytes` serialises every table above:
//! magic `b"SYNODMVCC"` ‖ format `u32 BE` (=3) ‖ for each table in the order
//! `meta, kv_index, kv_revs, kv_lease_keys, leases` (table ids 0..=4):
//! table id `u8` ‖ entry count `u64 BE` ‖ entries (`key len u32 BE` ‖ key ‖ `value len u32 BE`
//! ‖ value) in key order ‖ finally a CRC-32 (IEEE) `u32 BE` of all preceding bytes.
//! Formats 1 and 2 carried layout 1's tables; they are refused by name.

use prost::encoding::{decode_varint, encode_varint};
use redb::TableDefinition;

use crate::error::MvccError;
use crate::Revision;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const INDEX: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_index");
pub(crate) const REVS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_revs");
pub(crate) const LEASE_KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("kv_lease_keys");
pub(crate) const LEASES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leases");

/// Current layout version, stored under [`META_FORMAT`].
pub(crate) const FORMAT_VERSION: u8 = 2;
/// The layout of development builds before the key index (`kv_latest`, `kv_keys`,
/// `kv_history`): recognised only to be refused by name.
pub(crate) const FORMAT_VERSION_KV_HISTORY: u8 = 1;
pub(crate) const META_FORMAT: &str = "mvcc/format";
pub(crate) const META_CURRENT_REV: &str = "mvcc/current_revision";
pub(crate) const META_COMPACT_REV: &str = "mvcc/compact_revision";
pub(crate) const META_LIVE_KEYS: &str = "mvcc/live_keys";
/// Prefix of meta names reserved for this crate.
pub(crate) const RESERVED_META_PREFIX: &str = "mvcc/";

pub(crate) const KIND_PUT: u8 = 0x01;
pub(crate) const KIND_TOMBSTONE: u8 = 0x02;

/// Length of an encoded revision.
pub(crate) const REV_LEN: usize = 16;

/// A (main, sub) revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rev {
    pub main: Revision,
    pub sub: i64,
}

impl Rev {
    pub fn new(main: Revision, sub: i64) -> Rev {
        Rev { main, sub }
    }

    pub(crate) fn encode(self) -> [u8; REV_LEN] {
        let mut out = [0u8; REV_LEN];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Rev, MvccError> {
        if bytes.len() != REV_LEN {
            return Err(MvccError::Corrupt(format!(
                "revision key has {} bytes, expected {REV_LEN}",
                bytes.len()
            )));
        }
        Ok(Rev {
            main: be_i64(&bytes[..8])?,
            sub: be_i64(&bytes[8..])?,
        })
    }
}

pub(crate) fn be_i64(bytes: &[u8]) -> Result<i64, MvccError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        MvccError::Corrupt(format!(
            "expected 8-byte integer, got {} bytes",
            bytes.len()
        ))
    })?;
    Ok(i64::from_be_bytes(arr))
}

/// `lease ‖ key`: a `kv_lease_keys` key, into a reusable buffer (replacing its contents).
pub(crate) fn lease_key_into(out: &mut Vec<u8>, lease: i64, key: &[u8]) {
    out.clear();
    out.extend_from_slice(&lease.to_be_bytes());
    out.extend_from_slice(key);
}

/// Length of a lease record without / with a checkpointed remaining TTL.
pub(crate) const LEASE_RECORD_LEN: usize = 8;
pub(crate) const LEASE_RECORD_CHECKPOINTED_LEN: usize = 16;

/// Encodes a lease record: the 8-byte form when `remaining` is `None` or not positive (no
/// checkpointed value: the full TTL), else the 16-byte form.
pub(crate) fn encode_lease_record(ttl: i64, remaining: Option<i64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEASE_RECORD_CHECKPOINTED_LEN);
    out.extend_from_slice(&ttl.to_be_bytes());
    if let Some(r) = remaining.filter(|&r| r > 0) {
        out.extend_from_slice(&r.to_be_bytes());
    }
    out
}

/// Decodes one `leases` entry into (lease id, granted TTL, checkpointed remaining TTL).
pub(crate) fn decode_lease_entry(
    key: &[u8],
    value: &[u8],
) -> Result<(i64, i64, Option<i64>), MvccError> {
    if key.len() != 8 {
        return Err(MvccError::Corrupt("malformed leases entry".to_string()));
    }
    let id = be_i64(key)?;
    match value.len() {
        LEASE_RECORD_LEN => Ok((id, be_i64(value)?, None)),
        LEASE_RECORD_CHECKPOINTED_LEN => {
            let (ttl, remaining) = value.split_at(8);
            let remaining = be_i64(remaining)?;
            if remaining <= 0 {
                // Never written (see `encode_lease_record`): not something this layout made.
                return Err(MvccError::Corrupt("malformed leases entry".to_string()));
            }
            Ok((id, be_i64(ttl)?, Some(remaining)))
        }
        _ => Err(MvccError::Corrupt("malformed leases entry".to_string())),
    }
}

/// A put's metadata: everything etcd's `KeyValue` holds but the key and the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PutMeta {
    pub mod_rev: Rev,
    pub create_revision: Revision,
    pub version: i64,
    pub lease: i64,
}

/// A `kv_index` entry: a key's newest change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IndexEntry {
    Put(PutMeta),
    Tombstone(Rev),
}

impl IndexEntry {
    /// The revision of the change the entry names.
    pub fn rev(&self) -> Rev {
        match self {
            IndexEntry::Put(m) => m.mod_rev,
            IndexEntry::Tombstone(r) => *r,
        }
    }

    /// The live version's metadata, if the key is live.
    pub fn live(&self) -> Option<&PutMeta> {
        match self {
            IndexEntry::Put(m) => Some(m),
            IndexEntry::Tombstone(_) => None,
        }
    }
}

fn corrupt(what: &str) -> MvccError {
    MvccError::Corrupt(format!("malformed {what}"))
}

/// A non-negative number written as a varint (revisions, versions, lengths).
fn put_uvarint(out: &mut Vec<u8>, n: i64) {
    encode_varint(n as u64, out);
}

fn get_varint(buf: &mut &[u8], what: &str) -> Result<u64, MvccError> {
    decode_varint(buf).map_err(|_| corrupt(what))
}

/// A varint that must fit a non-negative `i64`.
fn get_uvarint(buf: &mut &[u8], what: &str) -> Result<i64, MvccError> {
    i64::try_from(get_varint(buf, what)?).map_err(|_| corrupt(what))
}

fn get_rev(buf: &mut &[u8], what: &str) -> Result<Rev, MvccError> {
    Ok(Rev::new(get_uvarint(buf, what)?, get_uvarint(buf, what)?))
}

fn put_rev(out: &mut Vec<u8>, rev: Rev) {
    put_uvarint(out, rev.main);
    put_uvarint(out, rev.sub);
}

/// create_revision ‖ version ‖ lease (the part of a put's metadata after its revision).
fn put_meta_tail(out: &mut Vec<u8>, m: &PutMeta) {
    put_uvarint(out, m.create_revision);
    put_uvarint(out, m.version);
    encode_varint(m.lease as u64, out);
}

fn get_meta_tail(buf: &mut &[u8], mod_rev: Rev, what: &str) -> Result<PutMeta, MvccError> {
    Ok(PutMeta {
        mod_rev,
        create_revision: get_uvarint(buf, what)?,
        version: get_uvarint(buf, what)?,
        lease: get_varint(buf, what)? as i64,
    })
}

/// Encodes a `kv_index` entry into a reusable buffer (replacing its contents).
pub(crate) fn encode_index_entry_into(out: &mut Vec<u8>, e: &IndexEntry) {
    out.clear();
    match e {
        IndexEntry::Put(m) => {
            out.push(KIND_PUT);
            put_rev(out, m.mod_rev);
            put_meta_tail(out, m);
        }
        IndexEntry::Tombstone(rev) => {
            out.push(KIND_TOMBSTONE);
            put_rev(out, *rev);
        }
    }
}

pub(crate) fn decode_index_entry(bytes: &[u8]) -> Result<IndexEntry, MvccError> {
    const WHAT: &str = "kv_index entry";
    let Some((&kind, mut buf)) = bytes.split_first() else {
        return Err(corrupt(WHAT));
    };
    let rev = get_rev(&mut buf, WHAT)?;
    let entry = match kind {
        KIND_PUT => IndexEntry::Put(get_meta_tail(&mut buf, rev, WHAT)?),
        KIND_TOMBSTONE => IndexEntry::Tombstone(rev),
        _ => return Err(corrupt(WHAT)),
    };
    if !buf.is_empty() {
        return Err(corrupt(WHAT));
    }
    Ok(entry)
}

/// Whether a `kv_index` value is a put (a live key), from its first byte only.
pub(crate) fn index_entry_is_live(bytes: &[u8]) -> Result<bool, MvccError> {
    match bytes.first() {
        Some(&KIND_PUT) => Ok(true),
        Some(&KIND_TOMBSTONE) => Ok(false),
        _ => Err(corrupt("kv_index entry")),
    }
}

/// A decoded `kv_revs` record, borrowing the key and value from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    pub key: &'a [u8],
    /// The key's previous change still possibly on disk, if any.
    pub prev: Option<Rev>,
    /// The put's metadata and value; `None` for a deletion.
    pub put: Option<(PutMeta, &'a [u8])>,
}

/// Encodes a put's `kv_revs` record into a reusable buffer (replacing its contents).
pub(crate) fn encode_put_change_into(
    out: &mut Vec<u8>,
    key: &[u8],
    prev: Option<Rev>,
    m: &PutMeta,
    value: &[u8],
) {
    out.clear();
    out.reserve(key.len() + value.len() + 24);
    out.push(KIND_PUT);
    put_change_key_prev(out, key, prev);
    put_meta_tail(out, m);
    out.extend_from_slice(value);
}

/// Encodes a deletion's `kv_revs` record into a reusable buffer (replacing its contents).
pub(crate) fn encode_delete_change_into(out: &mut Vec<u8>, key: &[u8], prev: Option<Rev>) {
    out.clear();
    out.push(KIND_TOMBSTONE);
    put_change_key_prev(out, key, prev);
}

fn put_change_key_prev(out: &mut Vec<u8>, key: &[u8], prev: Option<Rev>) {
    put_uvarint(out, key.len() as i64);
    out.extend_from_slice(key);
    put_rev(out, prev.unwrap_or(Rev::new(0, 0)));
}

/// Decodes the `kv_revs` record stored under `rev`.
pub(crate) fn decode_change(rev: Rev, bytes: &[u8]) -> Result<Change<'_>, MvccError> {
    const WHAT: &str = "kv_revs record";
    let Some((&kind, mut buf)) = bytes.split_first() else {
        return Err(corrupt(WHAT));
    };
    let key_len = usize::try_from(get_varint(&mut buf, WHAT)?).map_err(|_| corrupt(WHAT))?;
    if key_len > buf.len() {
        return Err(corrupt(WHAT));
    }
    let (key, mut rest) = buf.split_at(key_len);
    let prev = get_rev(&mut rest, WHAT)?;
    let prev = (prev.main != 0).then_some(prev);
    if prev.is_some_and(|p| p >= rev) {
        return Err(corrupt(WHAT));
    }
    let put = match kind {
        KIND_PUT => {
            let m = get_meta_tail(&mut rest, rev, WHAT)?;
            Some((m, rest))
        }
        KIND_TOMBSTONE if rest.is_empty() => None,
        _ => return Err(corrupt(WHAT)),
    };
    Ok(Change { key, prev, put })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(main: i64, sub: i64) -> PutMeta {
        PutMeta {
            mod_rev: Rev::new(main, sub),
            create_revision: 3,
            version: 4,
            lease: -5,
        }
    }

    #[test]
    fn index_entries_round_trip_and_reject_garbage() {
        let mut buf = b"garbage".to_vec();
        for e in [
            IndexEntry::Put(meta(1 << 40, 2)),
            IndexEntry::Put(PutMeta {
                lease: 0,
                ..meta(9, 0)
            }),
            IndexEntry::Tombstone(Rev::new(7, 1)),
        ] {
            encode_index_entry_into(&mut buf, &e);
            assert_eq!(decode_index_entry(&buf).unwrap(), e);
            assert_eq!(index_entry_is_live(&buf).unwrap(), e.live().is_some());
            // Truncated or extended entries are refused, never misread.
            assert!(decode_index_entry(&buf[..buf.len() - 1]).is_err());
            let mut longer = buf.clone();
            longer.push(0);
            assert!(decode_index_entry(&longer).is_err());
        }
        // A small live key's entry is small.
        encode_index_entry_into(
            &mut buf,
            &IndexEntry::Put(PutMeta {
                mod_rev: Rev::new(1_000_000, 0),
                create_revision: 900_000,
                version: 2,
                lease: 0,
            }),
        );
        assert_eq!(buf.len(), 10);
        assert!(decode_index_entry(&[]).is_err());
        assert!(decode_index_entry(&[9, 1, 1]).is_err());
        assert!(decode_index_entry(&[KIND_PUT, 0xFF, 0xFF]).is_err());
        assert!(index_entry_is_live(&[]).is_err());
    }

    #[test]
    fn change_records_round_trip_and_reject_garbage() {
        let mut buf = Vec::new();
        let rev = Rev::new(10, 1);
        encode_put_change_into(
            &mut buf,
            b"k\x00ey",
            Some(Rev::new(9, 0)),
            &meta(10, 1),
            b"v",
        );
        let c = decode_change(rev, &buf).unwrap();
        assert_eq!(c.key, b"k\x00ey");
        assert_eq!(c.prev, Some(Rev::new(9, 0)));
        assert_eq!(c.put, Some((meta(10, 1), &b"v"[..])));
        // An empty value is a put with an empty value.
        encode_put_change_into(&mut buf, b"", None, &meta(10, 1), b"");
        let c = decode_change(rev, &buf).unwrap();
        assert_eq!(
            (c.key, c.prev, c.put),
            (&b""[..], None, Some((meta(10, 1), &b""[..])))
        );
        encode_delete_change_into(&mut buf, b"key", Some(Rev::new(10, 0)));
        let c = decode_change(rev, &buf).unwrap();
        assert_eq!(
            (c.key, c.prev, c.put),
            (&b"key"[..], Some(Rev::new(10, 0)), None)
        );
        // A deletion with trailing bytes, a key longer than the record, a chain that does
        // not go back in time, an unknown kind.
        let mut longer = buf.clone();
        longer.push(1);
        assert!(decode_change(rev, &longer).is_err());
        assert!(decode_change(rev, &[KIND_PUT, 50, b'k']).is_err());
        encode_delete_change_into(&mut buf, b"key", Some(rev));
        assert!(decode_change(rev, &buf).is_err());
        assert!(decode_change(rev, &[7, 0, 0, 0]).is_err());
        assert!(decode_change(rev, &[]).is_err());
    }

    #[test]
    fn lease_records_have_two_forms_and_reject_garbage() {
        let key = 7i64.to_be_bytes();
        let plain = encode_lease_record(30, None);
        assert_eq!(plain, 30i64.to_be_bytes());
        assert_eq!(decode_lease_entry(&key, &plain).unwrap(), (7, 30, None));
        // "Unset" remaining TTLs keep the original 8-byte form.
        assert_eq!(encode_lease_record(30, Some(0)), plain);
        assert_eq!(encode_lease_record(30, Some(-4)), plain);
        let checkpointed = encode_lease_record(30, Some(12));
        assert_eq!(checkpointed.len(), 16);
        assert_eq!(
            decode_lease_entry(&key, &checkpointed).unwrap(),
            (7, 30, Some(12))
        );
        assert!(decode_lease_entry(&key, &checkpointed[..12]).is_err());
        assert!(decode_lease_entry(&key[..4], &plain).is_err());
        let mut zero = plain.clone();
        zero.extend_from_slice(&0i64.to_be_bytes());
        assert!(decode_lease_entry(&key, &zero).is_err());
    }

    #[test]
    fn revisions_sort_numerically() {
        let a = Rev::new(1, 300).encode();
        let b = Rev::new(2, 0).encode();
        let c = Rev::new(256, 0).encode();
        assert!(a < b && b < c);
    }
}
