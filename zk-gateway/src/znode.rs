//! A znode as read from the store (its three records and their etcd revisions), and the
//! client-visible `Stat` derived from it. Pure data: no I/O.

use synod_proto::mvccpb::KeyValue;

use crate::jute::{Acl, Stat};
use crate::layout::{decode_acl_record, ChildrenRecord, DataRecord, NodeKind, CREATED_HERE};

/// The etcd metadata of one stored record, as compared in a write's guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecordRev {
    pub create: i64,
    pub modified: i64,
    pub version: i64,
}

impl RecordRev {
    pub fn of(kv: &KeyValue) -> RecordRev {
        RecordRev {
            create: kv.create_revision,
            modified: kv.mod_revision,
            version: kv.version,
        }
    }
}

/// One znode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Znode {
    pub data: DataRecord,
    /// Totals: the base record plus the create/delete counters.
    pub children: ChildrenRecord,
    /// The stored base record alone.
    pub base: ChildrenRecord,
    pub acl: Vec<Acl>,
    /// Added to the ACL record's etcd version - 1 to give the aversion (see `layout`).
    pub aversion_offset: i32,
    pub data_rev: RecordRev,
    pub children_rev: RecordRev,
    pub acl_rev: RecordRev,
    pub plus_rev: RecordRev,
    pub minus_rev: RecordRev,
}

/// Why stored records could not be read as a znode.
#[derive(Debug, thiserror::Error)]
#[error("corrupt znode record in the store")]
pub struct CorruptRecord;

impl Znode {
    /// Assembles a znode from the key-values of its node range (data, children base, ACL,
    /// create counter, delete counter). `Ok(None)` if the data record is absent (the znode
    /// does not exist).
    pub fn from_kvs(
        data: Option<&KeyValue>,
        children: Option<&KeyValue>,
        acl: Option<&KeyValue>,
        plus: Option<&KeyValue>,
        minus: Option<&KeyValue>,
    ) -> Result<Option<Znode>, CorruptRecord> {
        let Some(d) = data else { return Ok(None) };
        let mut record = DataRecord::decode(&d.value).ok_or(CorruptRecord)?;
        if record.created == CREATED_HERE {
            // the write that re-created the znode: from now on its revision is the czxid
            record.created = d.mod_revision;
        }
        let c = children.ok_or(CorruptRecord)?;
        let base = ChildrenRecord::decode(&c.value).ok_or(CorruptRecord)?;
        let a = acl.ok_or(CorruptRecord)?;
        let (acl_list, aversion_offset) = decode_acl_record(&a.value).ok_or(CorruptRecord)?;
        // an absent counter is 0 (its first bump creates it with version 1)
        let plus_rev = plus.map(RecordRev::of).unwrap_or_default();
        let minus_rev = minus.map(RecordRev::of).unwrap_or_default();
        let creates = plus_rev.version as i32;
        let deletes = minus_rev.version as i32;
        Ok(Some(Znode {
            data: record,
            children: ChildrenRecord {
                creates: base.creates.wrapping_add(creates),
                count: base.count + creates - deletes,
            },
            base,
            acl: acl_list,
            aversion_offset,
            data_rev: RecordRev::of(d),
            children_rev: RecordRev::of(c),
            acl_rev: RecordRev::of(a),
            plus_rev,
            minus_rev,
        }))
    }

    /// The data version upstream would show: the data record's etcd version - 1, plus the
    /// offset a multi that set the data several times left in it.
    pub fn data_version(&self) -> i64 {
        self.data_rev.version - 1 + self.data.version_offset as i64
    }

    /// The revision that created this znode (upstream's czxid): its data key's etcd create
    /// revision, unless a multi deleted the znode and created it again (see
    /// [`DataRecord::created`]).
    pub fn czxid(&self) -> i64 {
        if self.data.created > 0 {
            self.data.created
        } else {
            self.data_rev.create
        }
    }

    pub fn is_ephemeral(&self) -> bool {
        self.data.kind == NodeKind::Ephemeral
    }

    /// The client-visible Stat. Revisions at or below `base` (the revision that created the
    /// built-in nodes `/`, `/zookeeper`, ...) read as zxid 0, as on a fresh ZooKeeper.
    pub fn stat(&self, base: i64) -> Stat {
        let zxid = |r: i64| if r <= base { 0 } else { r };
        let data_length = self.data.data.as_ref().map_or(0, |d| d.len() as i32);
        Stat {
            czxid: zxid(self.czxid()),
            mzxid: zxid(self.data_rev.modified),
            ctime: self.data.ctime,
            mtime: self.data.mtime,
            version: self.data_version() as i32,
            // upstream stores the number of child creates and shows 2 x creates - children,
            // i.e. creates plus deletes.
            cversion: self
                .children
                .creates
                .wrapping_mul(2)
                .wrapping_sub(self.children.count),
            aversion: ((self.acl_rev.version - 1) as i32).wrapping_add(self.aversion_offset),
            ephemeral_owner: if self.data.kind == NodeKind::Ephemeral {
                self.data.owner
            } else {
                0
            },
            data_length,
            num_children: self.children.count,
            pzxid: zxid(
                self.children_rev
                    .modified
                    .max(self.plus_rev.modified)
                    .max(self.minus_rev.modified),
            ),
        }
    }
}
