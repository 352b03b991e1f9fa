//! # On-disk layout of the MVCC store
//!
//! The state machine lives in a single [redb](https://docs.rs/redb) file. Every table uses
//! raw byte strings for keys and values (redb compares `&[u8]` keys with `memcmp`), so the
//! byte encodings below *are* the format: they do not depend on redb's own tuple or integer
//! encodings. All integers are big-endian; revisions are never negative on disk, so the
//! big-endian bytes of an `i64` sort like the number.
//!
//! ## Tables
//!
//! | table            | key                                  | value                         |
//! |------------------|--------------------------------------|-------------------------------|
//! | `meta`           | `&str` name                          | bytes (see *Meta keys*)       |
//! | `kv_latest`      | user key (raw bytes)                 | *put record* (current value)  |
//! | `kv_keys`        | user key (raw bytes)                 | `()`                          |
//! | `kv_history`     | *escaped user key* ‖ *revision*      | *put record* or *tombstone*   |
//! | `kv_revs`        | *revision*                           | kind byte ‖ user key          |
//! | `kv_lease_keys`  | lease id (i64 BE) ‖ user key         | `()`                          |
//! | `leases`         | lease id (i64 BE)                    | *lease record* (see below)    |
//!
//! * **`kv_latest`** holds exactly the live keys at the current revision with their full
//!   record. Reads at the current revision (the overwhelmingly common case) touch only this
//!   table (plus `kv_keys` to count) and never look at history.
//! * **`kv_keys`** mirrors the key set of `kv_latest` without values. It exists so that
//!   `count` (which etcd always reports for the whole range) can be computed by walking a
//!   dense key-only B-tree instead of every value in the range.
//! * **`kv_history`** holds every *superseded* version of every key plus one tombstone per
//!   deletion — but *not* the current version of a live key, which lives only in
//!   `kv_latest` (values are stored once). The state of key `k` at revision `R` is:
//!   the `kv_latest` record if its `mod_revision <= R`; otherwise the newest `kv_history`
//!   entry of `k` with main revision `<= R` (absent if that is a tombstone or there is none).
//!   When a key is overwritten or deleted its previous `kv_latest` record is moved, byte for
//!   byte, into `kv_history` under its own (mod main, mod sub) revision.
//! * **`kv_revs`** is the revision-ordered log of every change still on disk: one entry
//!   per (main, sub) revision naming the user key and whether it was a put or a delete.
//!   It drives compaction and watch catch-up (`ReadView::events_between`); the record itself
//!   is found in `kv_latest` (if its mod revision matches) or in `kv_history`.
//! * **`kv_lease_keys`** indexes live keys by attached lease, for lease revocation.
//! * **`leases`** holds every granted lease (etcd's `lease` bucket): exactly the ids a put may
//!   attach. A lease is added by a replicated grant and removed, together with its keys (one
//!   revision), by a replicated revoke. Deadlines are not state (the embedding layer's leader
//!   keeps them in memory); what is stored is the granted TTL and, once the leader has
//!   checkpointed the lease, its remaining TTL as of that checkpoint (etcd's `remainingTTL`),
//!   from which a whole-cluster restart resumes. Keys are exactly 8 bytes.
//!   The table was added without a layout-version bump: it is purely additive, and a file
//!   written before it existed gets an empty `leases` table when it is opened (such a file
//!   cannot hold lease attachments, since no lease could be granted).
//!
//! ## Encodings
//!
//! * **revision** — 16 bytes: `main: i64 BE` ‖ `sub: i64 BE`. `main` is the store revision
//!   of the write request, `sub` the index of the change inside it (0, 1, 2, ...).
//! * **escaped user key** — order-preserving and prefix-free: every `0x00` byte of the user
//!   key is written as `0x00 0xFF`, and the key is terminated by `0x00 0x01`. For user keys
//!   `a < b` (bytewise), `esc(a) < esc(b)` and no `esc(a)` is a prefix of another, so the
//!   entries of one key are contiguous, ordered by revision, and a user-key range `[a, b)`
//!   maps to the byte range `[esc(a), esc(b))` of `kv_history`. The smallest byte string
//!   above every entry of key `k` is `esc(k)` with its final `0x01` replaced by `0x02`.
//! * **put record** — 41-byte header followed by the value:
//!   `0x01` ‖ `create_revision: i64` ‖ `mod_revision main: i64` ‖ `mod_revision sub: i64` ‖
//!   `version: i64` ‖ `lease: i64` ‖ `value bytes...` (all integers BE).
//! * **tombstone** — the single byte `0x02` (its revision is in the `kv_history` key).
//! * **`kv_revs` value** — kind byte (`0x01` put, `0x02` delete) ‖ raw user key.
//! * **lease record** (`leases` value) — one of two lengths:
//!   * 8 bytes: `granted TTL: i64 BE`. No checkpoint since the grant: the remaining TTL is
//!     the full TTL. A grant writes this form, as does a checkpoint whose remaining TTL is
//!     `<= 0` (etcd's "unset").
//!   * 16 bytes: `granted TTL: i64 BE` ‖ `remaining TTL: i64 BE` (seconds, `> 0`), written by
//!     a lease checkpoint.
//!
//!   The 8-byte form is the table's original encoding, so files and snapshots written before
//!   checkpoints existed read unchanged, and a store that never saw a checkpoint is
//!   byte-identical to one written without them. A binary older than checkpoints refuses a
//!   16-byte record as corrupt (loudly, never misreading it).
//!
//! Why a hand-rolled record instead of a prost-encoded `mvccpb.KeyValue`: the key is already
//! the table key (prost would store it a second time), the record must also carry the sub
//! revision (not a `KeyValue` field), fixed offsets let compaction and filters read revision
//! fields without decoding the value, and decoding cannot allocate or fail in surprising
//! ways — a wrong length or kind byte is reported as `MvccError::Corrupt`. A record costs 41
//! bytes of overhead, comparable to a varint-encoded protobuf plus etcd's 17-byte revision key.
//!
//! ## Meta keys (`meta` table)
//!
//! * `mvcc/format` — one byte, the layout version (currently `1`).
//! * `mvcc/current_revision` — `i64 BE`, the store revision (starts at 1 with no keys).
//! * `mvcc/compact_revision` — `i64 BE`, the last compaction revision; absent if the store
//!   was never compacted.
//! * every other name is free for the embedding layer (`WriteBatch::set_meta`, e.g. the
//!   raft layer's `applied` index); names starting with `mvcc/` are reserved.
//!
//! ## Snapshots
//!
//! `MvccStore::snapshot_bytes` serialises every table above:
//! magic `b"SYNODMVCC"` ‖ format `u32 BE` (=2) ‖ for each table in the order
//! `meta, kv_latest, kv_keys, kv_history, kv_revs, kv_lease_keys, leases` (table ids 0..=6):
//! table id `u8` ‖ entry count `u64 BE` ‖ entries (`key len u32 BE` ‖ key ‖ `value len u32 BE`
//! ‖ value) in key order ‖ finally a CRC-32 (IEEE) `u32 BE` of all preceding bytes.
//! Format 1 is the same without the `leases` table; it is still accepted on restore (as a
//! store with no leases). Lease records are copied as they are stored (8 or 16 bytes, see
//! above); adding the 16-byte form did not change the snapshot format number.

use redb::TableDefinition;

use crate::error::MvccError;
use crate::Revision;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_latest");
pub(crate) const KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("kv_keys");
pub(crate) const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_history");
pub(crate) const REVS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_revs");
pub(crate) const LEASE_KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("kv_lease_keys");
pub(crate) const LEASES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leases");

/// Current layout version, stored under [`META_FORMAT`].
pub(crate) const FORMAT_VERSION: u8 = 1;
pub(crate) const META_FORMAT: &str = "mvcc/format";
pub(crate) const META_CURRENT_REV: &str = "mvcc/current_revision";
pub(crate) const META_COMPACT_REV: &str = "mvcc/compact_revision";
/// Prefix of meta names reserved for this crate.
pub(crate) const RESERVED_META_PREFIX: &str = "mvcc/";

pub(crate) const KIND_PUT: u8 = 0x01;
pub(crate) const KIND_TOMBSTONE: u8 = 0x02;

/// Length of a put record's fixed header.
pub(crate) const RECORD_HEADER_LEN: usize = 41;
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

/// `esc(key)`: the order-preserving, prefix-free encoding of a user key (with terminator).
pub(crate) fn escaped_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + REV_LEN);
    push_escaped_key(&mut out, key);
    out
}

/// Appends `esc(key)` to `out`.
pub(crate) fn push_escaped_key(out: &mut Vec<u8>, key: &[u8]) {
    // Copies the runs between 0x00 bytes whole (most keys have none).
    let mut runs = key.split(|&b| b == 0);
    if let Some(first) = runs.next() {
        out.extend_from_slice(first);
    }
    for run in runs {
        out.extend_from_slice(&[0x00, 0xFF]);
        out.extend_from_slice(run);
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// The smallest byte string greater than every `kv_history` key of `key`.
pub(crate) fn escaped_key_successor(key: &[u8]) -> Vec<u8> {
    let mut out = escaped_key(key);
    if let Some(last) = out.last_mut() {
        *last = 0x02;
    }
    out
}

/// `esc(key) ‖ rev`: a `kv_history` key.
pub(crate) fn history_key(key: &[u8], rev: Rev) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + REV_LEN);
    history_key_into(&mut out, key, rev);
    out
}

/// [`history_key`] into a reusable buffer (replacing its contents).
pub(crate) fn history_key_into(out: &mut Vec<u8>, key: &[u8], rev: Rev) {
    out.clear();
    push_escaped_key(out, key);
    out.extend_from_slice(&rev.encode());
}

/// Splits a `kv_history` key into the user key and the revision.
pub(crate) fn split_history_key(bytes: &[u8]) -> Result<(Vec<u8>, Rev), MvccError> {
    let corrupt = || MvccError::Corrupt("malformed kv_history key".to_string());
    if bytes.len() < REV_LEN + 2 {
        return Err(corrupt());
    }
    let (prefix, rev) = bytes.split_at(bytes.len() - REV_LEN);
    let rev = Rev::decode(rev)?;
    let mut key = Vec::with_capacity(prefix.len());
    let mut i = 0;
    while i < prefix.len() {
        let b = prefix[i];
        if b != 0 {
            key.push(b);
            i += 1;
            continue;
        }
        match prefix.get(i + 1) {
            Some(0xFF) => {
                key.push(0);
                i += 2;
            }
            Some(0x01) if i + 2 == prefix.len() => return Ok((key, rev)),
            _ => return Err(corrupt()),
        }
    }
    Err(corrupt())
}

/// Reads just the user key of a `kv_history` key (for skip-scans).
pub(crate) fn history_user_key(bytes: &[u8]) -> Result<Vec<u8>, MvccError> {
    split_history_key(bytes).map(|(k, _)| k)
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

/// A decoded put record (without the user key, which is the table key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub create_revision: i64,
    pub mod_rev: Rev,
    pub version: i64,
    pub lease: i64,
}

#[cfg(test)]
pub(crate) fn encode_record(h: &RecordHeader, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + value.len());
    encode_record_into(&mut out, h, value);
    out
}

/// Encodes a put record into a reusable buffer (replacing its contents).
pub(crate) fn encode_record_into(out: &mut Vec<u8>, h: &RecordHeader, value: &[u8]) {
    out.clear();
    out.reserve(RECORD_HEADER_LEN + value.len());
    out.push(KIND_PUT);
    out.extend_from_slice(&h.create_revision.to_be_bytes());
    out.extend_from_slice(&h.mod_rev.main.to_be_bytes());
    out.extend_from_slice(&h.mod_rev.sub.to_be_bytes());
    out.extend_from_slice(&h.version.to_be_bytes());
    out.extend_from_slice(&h.lease.to_be_bytes());
    out.extend_from_slice(value);
}

/// A `kv_history` value: a put record or a tombstone.
pub(crate) enum Stored<'a> {
    Put(RecordHeader, &'a [u8]),
    Tombstone,
}

pub(crate) fn decode_stored(bytes: &[u8]) -> Result<Stored<'_>, MvccError> {
    match bytes.first() {
        Some(&KIND_TOMBSTONE) if bytes.len() == 1 => Ok(Stored::Tombstone),
        Some(&KIND_PUT) => {
            let (h, v) = decode_record(bytes)?;
            Ok(Stored::Put(h, v))
        }
        _ => Err(MvccError::Corrupt("unknown record kind".to_string())),
    }
}

/// Decodes a put record into its header and value.
pub(crate) fn decode_record(bytes: &[u8]) -> Result<(RecordHeader, &[u8]), MvccError> {
    if bytes.len() < RECORD_HEADER_LEN || bytes[0] != KIND_PUT {
        return Err(MvccError::Corrupt(format!(
            "malformed put record ({} bytes)",
            bytes.len()
        )));
    }
    let h = RecordHeader {
        create_revision: be_i64(&bytes[1..9])?,
        mod_rev: Rev {
            main: be_i64(&bytes[9..17])?,
            sub: be_i64(&bytes[17..25])?,
        },
        version: be_i64(&bytes[25..33])?,
        lease: be_i64(&bytes[33..41])?,
    };
    Ok((h, &bytes[RECORD_HEADER_LEN..]))
}

/// Encodes a `kv_revs` value into a reusable buffer (replacing its contents).
pub(crate) fn encode_rev_entry_into(out: &mut Vec<u8>, kind: u8, key: &[u8]) {
    out.clear();
    out.push(kind);
    out.extend_from_slice(key);
}

/// Decodes a `kv_revs` value into (is_tombstone, user key).
pub(crate) fn decode_rev_entry(bytes: &[u8]) -> Result<(bool, &[u8]), MvccError> {
    match bytes.split_first() {
        Some((&KIND_PUT, key)) => Ok((false, key)),
        Some((&KIND_TOMBSTONE, key)) => Ok((true, key)),
        _ => Err(MvccError::Corrupt("malformed kv_revs entry".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_keys_preserve_order_and_are_prefix_free() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\x01",
            b"\x00\xff",
            b"\x01",
            b"a",
            b"a\x00",
            b"a\x00b",
            b"a\x01",
            b"ab",
            b"b",
            b"\xff",
            b"\xff\x00",
        ];
        for a in &keys {
            for b in &keys {
                let (ea, eb) = (escaped_key(a), escaped_key(b));
                assert_eq!(a.cmp(b), ea.cmp(&eb), "{a:?} vs {b:?}");
                if a != b {
                    assert!(!eb.starts_with(&ea), "{a:?} is a prefix of {b:?}");
                }
                // every history entry of `a` sorts below the successor of `a`
                let ha = history_key(a, Rev::new(i64::MAX, i64::MAX));
                assert!(ha < escaped_key_successor(a));
                if a < b {
                    assert!(escaped_key_successor(a) <= eb, "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn escaping_matches_the_byte_by_byte_definition() {
        fn reference(key: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for &b in key {
                out.push(b);
                if b == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0x00, 0x01]);
            out
        }
        for key in [
            &b""[..],
            b"\x00",
            b"\x00\x00",
            b"a\x00",
            b"\x00a",
            b"a\x00\x00b\x00",
            b"plain",
        ] {
            assert_eq!(escaped_key(key), reference(key), "{key:?}");
            let mut buf = b"garbage".to_vec();
            history_key_into(&mut buf, key, Rev::new(5, 6));
            let mut want = reference(key);
            want.extend_from_slice(&Rev::new(5, 6).encode());
            assert_eq!(buf, want, "{key:?}");
            assert_eq!(history_key(key, Rev::new(5, 6)), want, "{key:?}");
        }
    }

    #[test]
    fn history_keys_round_trip() {
        for key in [&b""[..], b"\x00", b"a\x00\x01b", b"\xff\x00\xff", b"plain"] {
            let rev = Rev::new(12345, 7);
            let (k, r) = split_history_key(&history_key(key, rev)).unwrap();
            assert_eq!((k.as_slice(), r), (key, rev));
        }
        assert!(split_history_key(b"short").is_err());
        assert!(split_history_key(&[0u8; 40]).is_err());
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let h = RecordHeader {
            create_revision: 3,
            mod_rev: Rev::new(9, 2),
            version: 4,
            lease: -5,
        };
        let bytes = encode_record(&h, b"value");
        let (h2, v) = decode_record(&bytes).unwrap();
        assert_eq!((h2, v), (h, &b"value"[..]));
        assert!(decode_record(&bytes[..40]).is_err());
        assert!(decode_stored(&[0]).is_err());
        assert!(matches!(
            decode_stored(&[KIND_TOMBSTONE]),
            Ok(Stored::Tombstone)
        ));
        assert!(decode_rev_entry(&[]).is_err());
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
