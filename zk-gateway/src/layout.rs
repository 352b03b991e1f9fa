//! How znodes and sessions are laid out as etcd keys and values. This is the gateway's on-disk
//! format (it lives in the store), so it is versioned and every decoder tolerates garbage.
//!
//! Keys, all under one prefix `P` (default `/zk/`):
//! - `P n DDDDD <path> \0 d` — the znode's data record: flags, ctime, mtime, ephemeral owner,
//!   TTL, then the data. Its etcd create/mod revision and version are the znode's czxid, mzxid
//!   and version (+1). A multi that sets a znode's data several times writes the record once
//!   (etcd: one change per key per txn) but upstream counts each and fires an event for each;
//!   such a record (format 2) carries, after the TTL, the version difference (an i32 added to
//!   the etcd version) and how many more data events its write stands for (an i32). A multi
//!   that deletes a znode and creates it again rewrites the same keys, so the data key keeps
//!   the old znode's create revision: such a record and every later one of that znode (format
//!   3) carry, after those two, the znode's own czxid (an i64; -1 in the write that re-created
//!   it, meaning that write's own mod revision).
//! - `P n DDDDD <path> \0 c` — the children base record: child creates and children counted
//!   by writes that changed several children of this znode at once (a multi).
//! - `P n DDDDD <path> \0 p` and `... \0 m` — child create and child delete COUNTERS: empty
//!   values whose etcd version counts single creates / deletes of children (absent: 0; a
//!   znode is created without them). A create puts
//!   `p` blindly (etcd bumps the version atomically), so concurrent creates under one parent
//!   never conflict. Children = base.count + creates - deletes; the stored cversion (which
//!   numbers sequential children) = base.creates + creates; the pzxid is the newest mod
//!   revision of `c`, `p` and `m`.
//! - `P n DDDDD <path> \0 a` — the ACL. Its etcd version is aversion + 1.
//!   `DDDDD` is the path's depth in five decimal digits, so the children of `/a` are exactly
//!   the keys with prefix `P n 00002 /a/`, and one range `[P n DDDDD <path> \0, ... \x01)` reads
//!   a whole znode (its five records).
//! - `P s <16 hex session id>` — a session, attached to the lease of the same id; value: the
//!   negotiated timeout and the owning connection.
//! - `P e <16 hex session id> <path>` — the ephemerals of a session (not leased: the gateway
//!   deletes them, and updates their parents, when the session key goes).
//! - `P t <path>` — containers and TTL nodes, scanned by the reaper.
//! - `P secret` — the key every gateway derives session passwords from.
//! - `P order` — the event order of the last multi that changed a znode more than once
//!   (setData twice with another op between, delete and create, create and delete): etcd
//!   keeps one change per key in a txn, so the order of the records cannot say the order of
//!   its events. Written in the multi's own txn, so watchers read it at the multi's revision:
//!   format 1, then per event its upstream type (u8: 1 created, 2 deleted, 3 data changed),
//!   its path's length (u32) and the path.
//!
//! Never interprets ZooKeeper semantics beyond encoding; never talks to the store.

use crate::jute::{Acl, Id};
use crate::path::ZnodePath;

/// Depth digits in node keys.
const DEPTH_WIDTH: usize = 5;
/// Deepest path the layout can hold.
pub const MAX_DEPTH: usize = 99_999;

/// The records of a znode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Data,
    Children,
    Acl,
    /// child create counter
    Plus,
    /// child delete counter
    Minus,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Data,
        Part::Children,
        Part::Acl,
        Part::Plus,
        Part::Minus,
    ];

    fn tag(self) -> u8 {
        match self {
            Part::Data => b'd',
            Part::Children => b'c',
            Part::Acl => b'a',
            Part::Plus => b'p',
            Part::Minus => b'm',
        }
    }
}

/// A key of the layout, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Node(ZnodePath, Part),
    Session(i64),
    Ephemeral(i64, ZnodePath),
    Timed(ZnodePath),
    /// The event order record (`P order`).
    EventOrder,
    Other,
}

#[derive(Clone, Debug)]
pub struct Layout {
    prefix: Vec<u8>,
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn with(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut k = self.prefix.clone();
        for p in parts {
            k.extend_from_slice(p);
        }
        k
    }

    fn depth_tag(depth: usize) -> Vec<u8> {
        format!("n{depth:0width$}", width = DEPTH_WIDTH).into_bytes()
    }

    /// `[start, end)` of the three records of `path`.
    pub fn node_range(&self, path: &ZnodePath) -> (Vec<u8>, Vec<u8>) {
        let d = Self::depth_tag(path.depth());
        (
            self.with(&[&d, path.as_str().as_bytes(), b"\0"]),
            self.with(&[&d, path.as_str().as_bytes(), b"\x01"]),
        )
    }

    pub fn node_key(&self, path: &ZnodePath, part: Part) -> Vec<u8> {
        let d = Self::depth_tag(path.depth());
        self.with(&[&d, path.as_str().as_bytes(), b"\0", &[part.tag()]])
    }

    /// `[start, end)` of every record of every child of `path`.
    pub fn children_range(&self, path: &ZnodePath) -> (Vec<u8>, Vec<u8>) {
        let d = Self::depth_tag(path.depth() + 1);
        let base = if path.is_root() { "" } else { path.as_str() };
        (
            self.with(&[&d, base.as_bytes(), b"/"]),
            self.with(&[&d, base.as_bytes(), b"0"]),
        )
    }

    /// `[start, end)` of every record of the descendants of `path` at absolute `depth`.
    pub fn level_range(&self, path: &ZnodePath, depth: usize) -> (Vec<u8>, Vec<u8>) {
        let d = Self::depth_tag(depth);
        let base = if path.is_root() { "" } else { path.as_str() };
        (
            self.with(&[&d, base.as_bytes(), b"/"]),
            self.with(&[&d, base.as_bytes(), b"0"]),
        )
    }

    pub fn session_key(&self, session: i64) -> Vec<u8> {
        self.with(&[format!("s{:016x}", session as u64).as_bytes()])
    }

    pub fn sessions_range(&self) -> (Vec<u8>, Vec<u8>) {
        (self.with(&[b"s"]), self.with(&[b"t"]))
    }

    pub fn ephemeral_key(&self, session: i64, path: &ZnodePath) -> Vec<u8> {
        self.with(&[
            format!("e{:016x}", session as u64).as_bytes(),
            path.as_str().as_bytes(),
        ])
    }

    /// The ephemerals of `session`; with `None`, of every session.
    pub fn ephemerals_range(&self, session: Option<i64>) -> (Vec<u8>, Vec<u8>) {
        match session {
            Some(s) => {
                let p = format!("e{:016x}", s as u64);
                (
                    self.with(&[p.as_bytes(), b"/"]),
                    self.with(&[p.as_bytes(), b"0"]),
                )
            }
            None => (self.with(&[b"e"]), self.with(&[b"f"])),
        }
    }

    pub fn timed_key(&self, path: &ZnodePath) -> Vec<u8> {
        self.with(&[b"t", path.as_str().as_bytes()])
    }

    pub fn timed_range(&self) -> (Vec<u8>, Vec<u8>) {
        (self.with(&[b"t/"]), self.with(&[b"t0"]))
    }

    pub fn secret_key(&self) -> Vec<u8> {
        self.with(&[b"secret"])
    }

    pub fn event_order_key(&self) -> Vec<u8> {
        self.with(&[b"order"])
    }

    /// The end of the whole layout's range (`prefix` + 1).
    pub fn prefix_end(&self) -> Vec<u8> {
        prefix_end(&self.prefix)
    }

    /// Decodes a key of this layout.
    pub fn parse(&self, key: &[u8]) -> KeyKind {
        let Some(rest) = key.strip_prefix(self.prefix.as_slice()) else {
            return KeyKind::Other;
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            return KeyKind::Other;
        };
        let hex = |s: &str| u64::from_str_radix(s, 16).ok().map(|v| v as i64);
        match rest.as_bytes().first() {
            Some(b'n') if rest.len() > 1 + DEPTH_WIDTH + 2 => {
                let body = &rest[1 + DEPTH_WIDTH..];
                let Some((path, tag)) = body.rsplit_once('\0') else {
                    return KeyKind::Other;
                };
                let part = match tag {
                    "d" => Part::Data,
                    "c" => Part::Children,
                    "a" => Part::Acl,
                    "p" => Part::Plus,
                    "m" => Part::Minus,
                    _ => return KeyKind::Other,
                };
                match ZnodePath::parse(path) {
                    Ok(p) => KeyKind::Node(p, part),
                    Err(_) => KeyKind::Other,
                }
            }
            Some(b's') if rest.len() == 17 => match hex(&rest[1..]) {
                Some(s) => KeyKind::Session(s),
                None => KeyKind::Other,
            },
            Some(b'e') if rest.len() > 17 => {
                match (hex(&rest[1..17]), ZnodePath::parse(&rest[17..])) {
                    (Some(s), Ok(p)) => KeyKind::Ephemeral(s, p),
                    _ => KeyKind::Other,
                }
            }
            Some(b't') => match ZnodePath::parse(&rest[1..]) {
                Ok(p) => KeyKind::Timed(p),
                Err(_) => KeyKind::Other,
            },
            _ if rest == "order" => KeyKind::EventOrder,
            _ => KeyKind::Other,
        }
    }
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// What kind of znode, as stored (CreateMode without the sequential bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeKind {
    #[default]
    Persistent,
    Ephemeral,
    Container,
    Ttl,
}

/// The data record (`... \0 d`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataRecord {
    pub kind: NodeKind,
    pub ctime: i64,
    pub mtime: i64,
    /// The owning session of an ephemeral (0 otherwise).
    pub owner: i64,
    /// TTL in ms of a TTL node (0 otherwise).
    pub ttl: i64,
    pub data: Option<Vec<u8>>,
    /// Added to the record's etcd version - 1 to give the znode's data version (0 unless a
    /// multi set the data more than once).
    pub version_offset: i32,
    /// NodeDataChanged events this write stands for beyond the one change it shows (created
    /// or changed): the further setData ops of the multi that wrote it. Belongs to that write
    /// alone: every write sets it afresh.
    pub repeats: i32,
    /// The znode's czxid when it is not the data key's etcd create revision: 0 for that,
    /// [`CREATED_HERE`] in the write of a multi that deleted the znode and created it again
    /// (the znode is as new as that write), else the revision of that write.
    pub created: i64,
}

/// [`DataRecord::created`] of a write that re-created its znode.
pub const CREATED_HERE: i64 = -1;

const DATA_FORMAT: u8 = 1;
/// Format 1 followed by the version offset and the repeats (i32 each) before the data.
const DATA_FORMAT_EXTENDED: u8 = 2;
/// Format 2 followed by the czxid ([`DataRecord::created`], an i64) before the data.
const DATA_FORMAT_CREATED: u8 = 3;
const DATA_HEADER: usize = 2 + 8 * 4;

impl DataRecord {
    pub fn encode(&self) -> Vec<u8> {
        let len = self.data.as_ref().map_or(0, |d| d.len());
        let mut v = Vec::with_capacity(DATA_HEADER + 8 + len);
        // The oldest format that can say it: what every record was before the new fields.
        let created = self.created != 0;
        let extended = created || self.version_offset != 0 || self.repeats != 0;
        v.push(if created {
            DATA_FORMAT_CREATED
        } else if extended {
            DATA_FORMAT_EXTENDED
        } else {
            DATA_FORMAT
        });
        let kind = match self.kind {
            NodeKind::Persistent => 0u8,
            NodeKind::Ephemeral => 1,
            NodeKind::Container => 2,
            NodeKind::Ttl => 3,
        };
        v.push(kind | if self.data.is_none() { 0x80 } else { 0 });
        for x in [self.ctime, self.mtime, self.owner, self.ttl] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        if extended {
            v.extend_from_slice(&self.version_offset.to_be_bytes());
            v.extend_from_slice(&self.repeats.to_be_bytes());
        }
        if created {
            v.extend_from_slice(&self.created.to_be_bytes());
        }
        if let Some(d) = &self.data {
            v.extend_from_slice(d);
        }
        v
    }

    pub fn decode(v: &[u8]) -> Option<DataRecord> {
        let header = match v.first() {
            Some(&DATA_FORMAT) => DATA_HEADER,
            Some(&DATA_FORMAT_EXTENDED) => DATA_HEADER + 8,
            Some(&DATA_FORMAT_CREATED) => DATA_HEADER + 16,
            _ => return None,
        };
        if v.len() < header {
            return None;
        }
        let kind = match v[1] & 0x7f {
            0 => NodeKind::Persistent,
            1 => NodeKind::Ephemeral,
            2 => NodeKind::Container,
            3 => NodeKind::Ttl,
            _ => return None,
        };
        let long = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[2 + 8 * i..10 + 8 * i]);
            i64::from_be_bytes(b)
        };
        let (version_offset, repeats) = extended_counters(v).unwrap_or((0, 0));
        // the czxid follows the four longs and the two counters: long 5
        let created = if v[0] == DATA_FORMAT_CREATED {
            long(5)
        } else {
            0
        };
        Some(DataRecord {
            kind,
            ctime: long(0),
            mtime: long(1),
            owner: long(2),
            ttl: long(3),
            data: if v[1] & 0x80 != 0 {
                None
            } else {
                Some(v[header..].to_vec())
            },
            version_offset,
            repeats,
            created,
        })
    }
}

/// The NodeDataChanged events a stored data record stands for beyond its first (see
/// [`DataRecord::repeats`]), read from its header alone: the watch path asks it of every put
/// and needs none of the data. 0 for format 1 and for what is not a data record.
pub fn data_record_repeats(v: &[u8]) -> i32 {
    extended_counters(v).map_or(0, |(_, repeats)| repeats)
}

/// A format-2 or -3 data record's version offset and repeats; `None` if `v` is too short for
/// them.
fn extended_counters(v: &[u8]) -> Option<(i32, i32)> {
    if !matches!(
        v.first(),
        Some(&DATA_FORMAT_EXTENDED | &DATA_FORMAT_CREATED)
    ) {
        return None;
    }
    let int =
        |i: usize| -> Option<i32> { Some(i32::from_be_bytes(v.get(i..i + 4)?.try_into().ok()?)) };
    Some((int(DATA_HEADER)?, int(DATA_HEADER + 4)?))
}

/// What one op of a multi did to a znode, as its watchers hear it (upstream's event types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZnodeEvent {
    Created,
    Deleted,
    DataChanged,
}

impl ZnodeEvent {
    const ALL: [ZnodeEvent; 3] = [
        ZnodeEvent::Created,
        ZnodeEvent::Deleted,
        ZnodeEvent::DataChanged,
    ];

    fn code(self) -> u8 {
        match self {
            ZnodeEvent::Created => 1,
            ZnodeEvent::Deleted => 2,
            ZnodeEvent::DataChanged => 3,
        }
    }

    fn from_code(code: u8) -> Option<ZnodeEvent> {
        ZnodeEvent::ALL.into_iter().find(|e| e.code() == code)
    }
}

const EVENT_ORDER_FORMAT: u8 = 1;

/// The event order record (`P order`): a multi's events on znodes, in the order of its ops.
pub fn encode_event_order(events: &[(ZnodeEvent, ZnodePath)]) -> Vec<u8> {
    let mut v = vec![EVENT_ORDER_FORMAT];
    for (e, path) in events {
        v.push(e.code());
        v.extend_from_slice(&(path.as_str().len() as u32).to_be_bytes());
        v.extend_from_slice(path.as_str().as_bytes());
    }
    v
}

/// Decodes [`encode_event_order`]; `None` for anything else (a watcher then fires the
/// revision's events from its records alone).
pub fn decode_event_order(v: &[u8]) -> Option<Vec<(ZnodeEvent, ZnodePath)>> {
    let (&format, mut rest) = v.split_first()?;
    if format != EVENT_ORDER_FORMAT {
        return None;
    }
    let mut out = Vec::new();
    while let Some((&code, after)) = rest.split_first() {
        let event = ZnodeEvent::from_code(code)?;
        let len = u32::from_be_bytes(after.get(..4)?.try_into().ok()?) as usize;
        let path = after.get(4..4usize.checked_add(len)?)?;
        out.push((
            event,
            ZnodePath::parse(std::str::from_utf8(path).ok()?).ok()?,
        ));
        rest = &after[4 + len..];
    }
    Some(out)
}

/// Child creates (upstream's stored cversion, which numbers sequential children) and the
/// number of children: as stored in the base record (`... \0 c`), or as totals with the
/// counters added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChildrenRecord {
    pub creates: i32,
    pub count: i32,
}

impl ChildrenRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(&self.creates.to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Option<ChildrenRecord> {
        if v.len() != 8 {
            return None;
        }
        let int = |i: usize| i32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        Some(ChildrenRecord {
            creates: int(0),
            count: int(4),
        })
    }
}

/// The ACL record (`... \0 a`): count, then perms + scheme + id, lengths as u32, then an
/// optional i32 added to the etcd version to give the aversion (upstream creates
/// `/zookeeper/config` with aversion -1).
pub fn encode_acl_record(acl: &[Acl], aversion_offset: i32) -> Vec<u8> {
    let mut v = encode_acl(acl);
    if aversion_offset != 0 {
        v.extend_from_slice(&aversion_offset.to_be_bytes());
    }
    v
}

/// Decodes an ACL record: the list and the aversion offset.
pub fn decode_acl_record(v: &[u8]) -> Option<(Vec<Acl>, i32)> {
    let acl = decode_acl(v)?;
    let used = encode_acl(&acl).len();
    let offset = match v.get(used..) {
        Some([a, b, c, d]) => i32::from_be_bytes([*a, *b, *c, *d]),
        Some([]) => 0,
        _ => return None,
    };
    Some((acl, offset))
}

pub fn encode_acl(acl: &[Acl]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(acl.len() as u32).to_be_bytes());
    for a in acl {
        v.extend_from_slice(&a.perms.to_be_bytes());
        for s in [&a.id.scheme, &a.id.id] {
            v.extend_from_slice(&(s.len() as u32).to_be_bytes());
            v.extend_from_slice(s.as_bytes());
        }
    }
    v
}

pub fn decode_acl(v: &[u8]) -> Option<Vec<Acl>> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = v.get(pos..pos.checked_add(n)?)?;
        pos += n;
        Some(s)
    };
    let u32_at = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let count = u32_at(take(4)?) as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        let perms = u32_at(take(4)?) as i32;
        let n = u32_at(take(4)?) as usize;
        let scheme = String::from_utf8(take(n)?.to_vec()).ok()?;
        let n = u32_at(take(4)?) as usize;
        let id = String::from_utf8(take(n)?.to_vec()).ok()?;
        out.push(Acl {
            perms,
            id: Id { scheme, id },
        });
    }
    Some(out)
}

/// The session record (`P s <id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub timeout_ms: i32,
    /// Which connection holds the session now (gateway instance + connection number), so a
    /// gateway can drop a connection whose session moved elsewhere.
    pub holder: String,
}

impl SessionRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.timeout_ms.to_be_bytes().to_vec();
        v.extend_from_slice(self.holder.as_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Option<SessionRecord> {
        if v.len() < 4 {
            return None;
        }
        Some(SessionRecord {
            timeout_ms: i32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            holder: String::from_utf8_lossy(&v[4..]).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ZnodePath {
        ZnodePath::parse(s).unwrap()
    }

    #[test]
    fn node_keys_sort_children_under_their_parent_only() {
        let l = Layout::new("/zk/");
        let (start, end) = l.children_range(&p("/a"));
        let child = l.node_key(&p("/a/b"), Part::Data);
        let grandchild = l.node_key(&p("/a/b/c"), Part::Data);
        let sibling = l.node_key(&p("/ab/c"), Part::Data);
        assert!(start <= child && child < end);
        assert!(!(start <= grandchild && grandchild < end));
        assert!(!(start <= sibling && sibling < end));
        let (rs, re) = l.children_range(&ZnodePath::root());
        let top = l.node_key(&p("/a"), Part::Children);
        assert!(rs <= top && top < re);
        let (ns, ne) = l.node_range(&p("/a"));
        for part in Part::ALL {
            let k = l.node_key(&p("/a"), part);
            assert!(ns <= k && k < ne);
            assert_eq!(l.parse(&k), KeyKind::Node(p("/a"), part));
        }
        assert!(!(ns <= child && child < ne));
    }

    #[test]
    fn event_orders_round_trip_and_reject_garbage() {
        let events = vec![
            (ZnodeEvent::DataChanged, p("/x")),
            (ZnodeEvent::DataChanged, p("/y")),
            (ZnodeEvent::DataChanged, p("/x")),
            (ZnodeEvent::Created, p("/g")),
            (ZnodeEvent::Deleted, p("/g")),
        ];
        let v = encode_event_order(&events);
        assert_eq!(decode_event_order(&v), Some(events));
        assert_eq!(decode_event_order(&[1]), Some(Vec::new()));
        for cut in 2..v.len() {
            if cut == 8 || cut == 15 || cut == 22 || cut == 29 {
                continue; // whole events
            }
            assert_eq!(decode_event_order(&v[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_event_order(b""), None);
        assert_eq!(decode_event_order(&[2, 1, 0, 0, 0, 2, b'/', b'x']), None);
        assert_eq!(decode_event_order(&[1, 9, 0, 0, 0, 2, b'/', b'x']), None);
        assert_eq!(decode_event_order(&[1, 1, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_event_order(&[1, 1, 0, 0, 0, 2, b'x', b'/']), None);
        let l = Layout::new("/zk/");
        assert_eq!(l.parse(&l.event_order_key()), KeyKind::EventOrder);
    }

    #[test]
    fn other_keys_round_trip() {
        let l = Layout::new("/zk/");
        assert_eq!(l.parse(&l.session_key(-5)), KeyKind::Session(-5));
        assert_eq!(
            l.parse(&l.ephemeral_key(7, &p("/x/y"))),
            KeyKind::Ephemeral(7, p("/x/y"))
        );
        assert_eq!(l.parse(&l.timed_key(&p("/t"))), KeyKind::Timed(p("/t")));
        assert_eq!(l.parse(b"/other"), KeyKind::Other);
        assert_eq!(l.parse(&l.secret_key()), KeyKind::Other);
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let d = DataRecord {
            kind: NodeKind::Ttl,
            ctime: 1,
            mtime: 2,
            owner: 3,
            ttl: 4,
            data: Some(b"hi".to_vec()),
            version_offset: 0,
            repeats: 0,
            created: 0,
        };
        assert_eq!(
            d.encode()[0],
            1,
            "no offset: format 1, as before offsets existed"
        );
        assert_eq!(DataRecord::decode(&d.encode()), Some(d.clone()));
        for (offset, repeats) in [(1, 0), (-7, 2), (i32::MAX, 0), (0, 1)] {
            let o = DataRecord {
                version_offset: offset,
                repeats,
                ..d.clone()
            };
            assert_eq!(o.encode()[0], 2);
            assert_eq!(data_record_repeats(&o.encode()), repeats);
            assert_eq!(DataRecord::decode(&o.encode()), Some(o));
        }
        // a czxid of its own: format 3, whatever the counters
        for (offset, repeats, created) in [(0, 0, CREATED_HERE), (-2, 1, CREATED_HERE), (0, 0, 77)]
        {
            let o = DataRecord {
                version_offset: offset,
                repeats,
                created,
                ..d.clone()
            };
            assert_eq!(o.encode()[0], 3);
            assert_eq!(data_record_repeats(&o.encode()), repeats);
            assert_eq!(DataRecord::decode(&o.encode()), Some(o.clone()));
            // cut inside the czxid
            let cut = &o.encode()[..DATA_HEADER + 12];
            assert_eq!(DataRecord::decode(cut), None);
        }
        let no_data = DataRecord {
            data: None,
            version_offset: 3,
            ..d.clone()
        };
        assert_eq!(DataRecord::decode(&no_data.encode()), Some(no_data));
        let n = DataRecord::default();
        assert_eq!(DataRecord::decode(&n.encode()), Some(n));
        assert_eq!(DataRecord::decode(b"xx"), None);
        // format 2 cut inside its counters
        let mut cut = DataRecord {
            version_offset: 1,
            data: None,
            ..d
        }
        .encode();
        cut.truncate(DATA_HEADER + 6);
        assert_eq!(DataRecord::decode(&cut), None);
        assert_eq!(data_record_repeats(&cut), 0);
        assert_eq!(data_record_repeats(&d.encode()), 0);
        assert_eq!(data_record_repeats(b""), 0);
        assert_eq!(DataRecord::decode(&[3u8; 40]), None);
        let c = ChildrenRecord {
            creates: 5,
            count: 2,
        };
        assert_eq!(ChildrenRecord::decode(&c.encode()), Some(c));
        let acl = vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        assert_eq!(decode_acl(&encode_acl(&acl)), Some(acl));
        assert_eq!(decode_acl(&[0, 0, 0, 9]), None);
        let s = SessionRecord {
            timeout_ms: 4000,
            holder: "g1/3".into(),
        };
        assert_eq!(SessionRecord::decode(&s.encode()), Some(s));
    }
}
