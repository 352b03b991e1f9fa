//! Whole-state snapshots for raft snapshot transfer (format: see [`crate::layout`]).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::MvccError;
use crate::layout::{
    be_i64, decode_lease_entry, FORMAT_VERSION, INDEX, LEASES, LEASE_KEYS, META, META_COMPACT_REV,
    META_CURRENT_REV, META_FORMAT, REVS,
};

const MAGIC: &[u8; 9] = b"SYNODMVCC";
/// The format written: the tables of store layout 2.
const SNAPSHOT_FORMAT: u32 = 3;
/// Formats 1 and 2 carried the tables of store layout 1 (`kv_latest`, `kv_keys`,
/// `kv_history`), from development builds before the key index: refused by name.
const LAST_KV_HISTORY_FORMAT: u32 = 2;

/// Table ids in snapshot order.
const T_META: u8 = 0;
const T_INDEX: u8 = 1;
const T_REVS: u8 = 2;
const T_LEASE_KEYS: u8 = 3;
const T_LEASES: u8 = 4;
const TABLE_COUNT: usize = 5;

type BytesDef = TableDefinition<'static, &'static [u8], &'static [u8]>;
type SetDef = TableDefinition<'static, &'static [u8], ()>;

const BYTES_TABLES: [(u8, BytesDef); 3] = [(T_INDEX, INDEX), (T_REVS, REVS), (T_LEASES, LEASES)];
const SET_TABLES: [(u8, SetDef); 1] = [(T_LEASE_KEYS, LEASE_KEYS)];

/// CRC-32 (IEEE 802.3), the snapshot trailer's checksum (`crc32fast`: the same polynomial the
/// Raft log's records use, hardware-accelerated where the CPU has it).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

fn put_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) -> Result<(), MvccError> {
    for part in [key, value] {
        let len = u32::try_from(part.len())
            .map_err(|_| MvccError::Storage("record too large for a snapshot".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(())
}

fn put_table_header(out: &mut Vec<u8>, id: u8, count: u64) {
    out.push(id);
    out.extend_from_slice(&count.to_be_bytes());
}

pub(crate) fn write_snapshot(txn: &ReadTransaction) -> Result<Vec<u8>, MvccError> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT.to_be_bytes());

    let mut body = Vec::new();
    let mut count = 0u64;
    for entry in txn.open_table(META)?.iter()? {
        let (k, v) = entry?;
        put_entry(&mut body, k.value().as_bytes(), v.value())?;
        count += 1;
    }
    put_table_header(&mut out, T_META, count);
    out.append(&mut body);

    for id in 1..TABLE_COUNT as u8 {
        let mut count = 0u64;
        if let Some((_, def)) = BYTES_TABLES.iter().find(|(i, _)| *i == id) {
            for entry in txn.open_table(*def)?.iter()? {
                let (k, v) = entry?;
                put_entry(&mut body, k.value(), v.value())?;
                count += 1;
            }
        } else if let Some((_, def)) = SET_TABLES.iter().find(|(i, _)| *i == id) {
            for entry in txn.open_table(*def)?.iter()? {
                let (k, _) = entry?;
                put_entry(&mut body, k.value(), &[])?;
                count += 1;
            }
        }
        put_table_header(&mut out, id, count);
        out.append(&mut body);
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// A validated snapshot: per table id, its entries (borrowing the snapshot bytes).
pub(crate) struct Parsed<'a> {
    tables: Vec<Vec<(&'a [u8], &'a [u8])>>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MvccError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| MvccError::Corrupt("snapshot is truncated".into()))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MvccError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MvccError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, MvccError> {
        Ok(be_i64(self.take(8)?)? as u64)
    }

    fn bytes(&mut self) -> Result<&'a [u8], MvccError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

pub(crate) fn parse_snapshot(data: &[u8]) -> Result<Parsed<'_>, MvccError> {
    let corrupt = |m: &str| MvccError::Corrupt(format!("snapshot: {m}"));
    if data.len() < MAGIC.len() + 4 + 4 || &data[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not an mvcc snapshot"));
    }
    let (body, crc) = data.split_at(data.len() - 4);
    if crc32(body).to_be_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader {
        data: body,
        pos: MAGIC.len(),
    };
    let format = r.u32()?;
    let table_count = match format {
        SNAPSHOT_FORMAT => TABLE_COUNT,
        1..=LAST_KV_HISTORY_FORMAT => {
            return Err(MvccError::UnsupportedLayout(format!(
                "snapshot format {format} holds store layout 1 (development builds before \
                 the key index); this build restores format {SNAPSHOT_FORMAT} only"
            )))
        }
        _ => return Err(corrupt(&format!("unsupported format {format}"))),
    };
    let mut tables = Vec::with_capacity(TABLE_COUNT);
    for id in 0..table_count as u8 {
        if r.u8()? != id {
            return Err(corrupt("tables out of order"));
        }
        let count = r.u64()?;
        // Each entry takes at least 8 bytes: bounds the allocation for hostile counts.
        if count > (body.len() / 8) as u64 {
            return Err(corrupt("impossible entry count"));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut prev: Option<&[u8]> = None;
        for _ in 0..count {
            let k = r.bytes()?;
            let v = r.bytes()?;
            if prev.is_some_and(|p| p >= k) {
                return Err(corrupt("keys out of order"));
            }
            if id == T_LEASE_KEYS && !v.is_empty() {
                return Err(corrupt("set entry with a value"));
            }
            if id == T_META && std::str::from_utf8(k).is_err() {
                return Err(corrupt("meta name is not UTF-8"));
            }
            if id == T_LEASES {
                decode_lease_entry(k, v).map_err(|_| corrupt("malformed lease entry"))?;
            }
            prev = Some(k);
            entries.push((k, v));
        }
        tables.push(entries);
    }
    if r.pos != body.len() {
        return Err(corrupt("trailing bytes"));
    }
    // The meta table must describe a store of this layout.
    let meta = &tables[T_META as usize];
    let find = |name: &str| {
        meta.iter()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| *v)
    };
    if find(META_FORMAT) != Some(&[FORMAT_VERSION][..]) {
        return Err(corrupt("missing or unsupported layout version"));
    }
    let current = be_i64(find(META_CURRENT_REV).ok_or_else(|| corrupt("no current revision"))?)?;
    if let Some(c) = find(META_COMPACT_REV) {
        let c = be_i64(c)?;
        if c < 0 || c > current {
            return Err(corrupt("impossible compaction revision"));
        }
    }
    if current < 1 {
        return Err(corrupt("impossible current revision"));
    }
    Ok(Parsed { tables })
}

pub(crate) fn restore(txn: &WriteTransaction, p: &Parsed<'_>) -> Result<(), MvccError> {
    txn.delete_table(META)?;
    {
        let mut meta = txn.open_table(META)?;
        for (k, v) in &p.tables[T_META as usize] {
            let name = std::str::from_utf8(k)
                .map_err(|_| MvccError::Corrupt("snapshot: meta name is not UTF-8".into()))?;
            meta.insert(name, *v)?;
        }
    }
    for (id, def) in BYTES_TABLES {
        txn.delete_table(def)?;
        let mut table = txn.open_table(def)?;
        for (k, v) in &p.tables[id as usize] {
            table.insert(*k, *v)?;
        }
    }
    for (id, def) in SET_TABLES {
        txn.delete_table(def)?;
        let mut table = txn.open_table(def)?;
        for (k, _) in &p.tables[id as usize] {
            table.insert(*k, ())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// A minimal valid snapshot body: `tables[i]` entries for table id `i`.
    fn build(format: u32, tables: &[Vec<(&[u8], &[u8])>]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&format.to_be_bytes());
        for (id, entries) in tables.iter().enumerate() {
            put_table_header(&mut out, id as u8, entries.len() as u64);
            for (k, v) in entries {
                put_entry(&mut out, k, v).unwrap();
            }
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn meta_entries() -> Vec<(&'static [u8], &'static [u8])> {
        // Sorted by name: mvcc/current_revision < mvcc/format.
        vec![
            (META_CURRENT_REV.as_bytes(), &[0, 0, 0, 0, 0, 0, 0, 1]),
            (META_FORMAT.as_bytes(), &[FORMAT_VERSION]),
        ]
    }

    #[test]
    fn snapshots_of_the_kv_history_layout_are_refused_by_name() {
        for format in [1u32, 2] {
            let mut tables = vec![meta_entries()];
            tables.resize_with(if format == 1 { 6 } else { 7 }, Vec::new);
            let err = parse_snapshot(&build(format, &tables)).err().unwrap();
            assert!(matches!(err, MvccError::UnsupportedLayout(_)), "{err:?}");
            assert!(err.to_string().contains("store layout 1"), "{err}");
        }
    }

    #[test]
    fn snapshots_carry_leases_and_reject_malformed_ones() {
        let id = 7i64.to_be_bytes();
        let ttl = 30i64.to_be_bytes();
        let mut tables = vec![meta_entries()];
        tables.resize_with(TABLE_COUNT, Vec::new);
        tables[T_LEASES as usize] = vec![(&id[..], &ttl[..])];
        let data = build(SNAPSHOT_FORMAT, &tables);
        let parsed = parse_snapshot(&data).unwrap();
        assert_eq!(parsed.tables[T_LEASES as usize], vec![(&id[..], &ttl[..])]);
        // A checkpointed lease record (TTL and remaining TTL) is carried as it is.
        let checkpointed = [ttl, 12i64.to_be_bytes()].concat();
        tables[T_LEASES as usize] = vec![(&id[..], &checkpointed[..])];
        let data = build(SNAPSHOT_FORMAT, &tables);
        let parsed = parse_snapshot(&data).unwrap();
        assert_eq!(
            parsed.tables[T_LEASES as usize],
            vec![(&id[..], &checkpointed[..])]
        );
        // A lease entry that is neither 8 nor 16 bytes.
        tables[T_LEASES as usize] = vec![(&id[..], &ttl[..4])];
        assert!(parse_snapshot(&build(SNAPSHOT_FORMAT, &tables)).is_err());
        // A lease attachment with a value.
        tables[T_LEASES as usize] = Vec::new();
        tables[T_LEASE_KEYS as usize] = vec![(&id[..], &ttl[..])];
        assert!(parse_snapshot(&build(SNAPSHOT_FORMAT, &tables)).is_err());
        tables[T_LEASE_KEYS as usize] = Vec::new();
        // A table missing.
        tables.pop();
        assert!(parse_snapshot(&build(SNAPSHOT_FORMAT, &tables)).is_err());
        // An unknown format.
        assert!(parse_snapshot(&build(SNAPSHOT_FORMAT + 1, &[meta_entries()])).is_err());
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse_snapshot(b"").is_err());
        assert!(parse_snapshot(b"SYNODMVCC\0\0\0\x01\0\0\0\0").is_err());
        let mut data = b"SYNODMVCC\0\0\0\x01".to_vec();
        data.push(0);
        data.extend_from_slice(&u64::MAX.to_be_bytes());
        let crc = crc32(&data);
        data.extend_from_slice(&crc.to_be_bytes());
        assert!(parse_snapshot(&data).is_err());
    }
}
