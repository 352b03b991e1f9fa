//! A write plan: ZooKeeper's write operations (create, delete, setData, setACL, check) checked
//! in upstream's order against an overlay of the znodes they touch, then committed as ONE etcd
//! Txn guarded by exactly what the checks read (a znode's existence, its data version, its
//! ACL, its child counts). A failed guard means another writer got there first: the caller
//! re-plans from scratch. One plan is one zxid, so a `multi` is atomic and every znode it
//! changes shares the zxid, as upstream.
//!
//! A single child create or delete bumps its parent's create/delete counter blindly (see
//! `layout`), so writers under one parent do not conflict; only what depends on the exact
//! count (a sequential name, NotEmpty) guards the counters.
//!
//! Stats handed out before the commit carry `PENDING` where the new zxid goes; `finish`
//! replaces it with the committed revision.

use std::collections::HashMap;

use synod_proto::etcdserverpb::{Compare, RequestOp};

use crate::acl::{fixup, Identity};
use crate::jute::{Acl, CreateRequest, Stat};
use crate::layout::{
    encode_acl_record, encode_event_order, ChildrenRecord, DataRecord, NodeKind, Part, ZnodeEvent,
    CREATED_HERE,
};
use crate::path::ZnodePath;
use crate::proto::{err, op, perms, CreateMode};
use crate::store::{create_is, delete, mod_is, put, version_is, StoreError, ZkStore};
use crate::znode::{RecordRev, Znode};

/// Stands for "the zxid of this plan" until it commits.
pub const PENDING: i64 = i64::MAX;

/// Upstream's largest TTL (`EphemeralType.MAX_TTL`, 40 bits of milliseconds).
pub const MAX_TTL: i64 = 0xFF_FFFF_FFFF;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A ZooKeeper error code for this operation.
    #[error("zookeeper error {0}")]
    Zk(i32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpError {
    pub fn code(&self) -> i32 {
        match self {
            OpError::Zk(c) => *c,
            OpError::Store(_) => err::SYSTEM_ERROR,
        }
    }
}

/// Who runs the operations of a plan.
pub struct Caller<'a> {
    pub session: i64,
    pub identity: &'a Identity,
}

#[derive(Clone, Copy, Debug, Default)]
struct Dirty {
    created: bool,
    data: bool,
    acl: bool,
    /// children created / deleted under this znode by the plan
    child_creates: i32,
    child_deletes: i32,
    /// setData ops of the plan on this znode.
    data_sets: i32,
    /// The plan's step that first created, deleted or changed the data of this znode: its
    /// data record is written in that order, because the gateway's watch events follow the
    /// order of the data records in the txn and upstream fires a multi's events op by op.
    visible_at: Option<u32>,
}

/// What the plan's checks read of a znode, and so what the commit guards.
#[derive(Clone, Copy, Debug, Default)]
struct Deps {
    data: bool,
    acl: bool,
    /// the exact child create count (a sequential name) or child count (NotEmpty)
    counts: bool,
}

pub struct Plan<'s> {
    store: &'s ZkStore,
    min_rev: i64,
    now_ms: i64,
    /// The revision every read of this plan is made at (0 until the first read).
    at: i64,
    loaded: HashMap<ZnodePath, Option<Znode>>,
    current: HashMap<ZnodePath, Option<Znode>>,
    deps: HashMap<ZnodePath, Deps>,
    dirty: Vec<(ZnodePath, Dirty)>,
    /// Steps that made a visible change so far (see [`Dirty::visible_at`]).
    visible_steps: u32,
    /// Those steps' events, in order: stored with the commit when the order of the records
    /// cannot say it (see [`crate::layout`], `P order`).
    events: Vec<(ZnodeEvent, ZnodePath)>,
    index_ops: Vec<RequestOp>,
}

fn special_str(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

fn check_version(expected: i32, actual: i64) -> Result<(), OpError> {
    if expected != -1 && expected as i64 != actual {
        return Err(OpError::Zk(err::BAD_VERSION));
    }
    Ok(())
}

fn bad_args<T>() -> Result<T, OpError> {
    Err(OpError::Zk(err::BAD_ARGUMENTS))
}

/// Upstream's parent of an unvalidated path (create and delete look the parent up before they
/// validate the path itself): BadArguments without a '/' or with a NUL; `None` for a parent
/// that is not a valid path, which cannot exist.
fn parent_of(path: &str) -> Result<Option<ZnodePath>, OpError> {
    let Some(slash) = path.rfind('/') else {
        return bad_args();
    };
    if path.contains('\0') {
        return bad_args();
    }
    Ok(match &path[..slash] {
        "" => Some(ZnodePath::root()),
        p => ZnodePath::parse(p).ok(),
    })
}

impl<'s> Plan<'s> {
    pub fn new(store: &'s ZkStore, min_rev: i64, now_ms: i64) -> Plan<'s> {
        Plan {
            store,
            min_rev,
            now_ms,
            at: 0,
            loaded: HashMap::new(),
            current: HashMap::new(),
            deps: HashMap::new(),
            dirty: Vec::new(),
            visible_steps: 0,
            events: Vec::new(),
            index_ops: Vec::new(),
        }
    }

    /// The znode at `path` as the plan sees it so far.
    pub async fn node(&mut self, path: &ZnodePath) -> Result<Option<Znode>, StoreError> {
        if let Some(n) = self.current.get(path) {
            return Ok(n.clone());
        }
        // Every read of a plan sees the snapshot of its first read, so the errors a plan
        // derives (NodeExists, NoNode, ...) hold at one revision even when it never commits.
        let (n, rev) = self.store.read_at(path, self.min_rev, self.at).await?;
        if self.at == 0 {
            self.at = rev;
        }
        self.loaded.insert(path.clone(), n.clone());
        self.current.insert(path.clone(), n.clone());
        Ok(n)
    }

    fn mark(&mut self, path: &ZnodePath, f: impl FnOnce(&mut Dirty)) {
        if let Some((_, d)) = self.dirty.iter_mut().find(|(p, _)| p == path) {
            f(d);
        } else {
            let mut d = Dirty::default();
            f(&mut d);
            self.dirty.push((path.clone(), d));
        }
    }

    /// Marks `path` created, deleted or with new data (`event`, `f`), in step order.
    fn mark_visible(&mut self, path: &ZnodePath, event: ZnodeEvent, f: impl FnOnce(&mut Dirty)) {
        let step = self.visible_steps;
        self.visible_steps += 1;
        self.events.push((event, path.clone()));
        self.mark(path, |d| {
            f(d);
            d.visible_at.get_or_insert(step);
        });
    }

    /// The revision the plan read at (0 if it read nothing).
    pub fn read_revision(&self) -> i64 {
        self.at
    }

    /// The znode at `path`, or NoNode (also for no path at all).
    async fn existing(&mut self, path: Option<ZnodePath>) -> Result<(ZnodePath, Znode), OpError> {
        if let Some(p) = path {
            if let Some(n) = self.node(&p).await? {
                return Ok((p, n));
            }
        }
        Err(OpError::Zk(err::NO_NODE))
    }

    fn depend(&mut self, path: &ZnodePath, f: impl FnOnce(&mut Deps)) {
        f(self.deps.entry(path.clone()).or_default());
    }

    fn set(&mut self, path: &ZnodePath, n: Option<Znode>) {
        self.current.insert(path.clone(), n);
    }

    /// The Stat of `path` now (with `PENDING` zxids for what this plan changed).
    pub fn stat(&self, path: &ZnodePath) -> Option<Stat> {
        self.current
            .get(path)
            .and_then(|n| n.as_ref())
            .map(|n| n.stat(self.store.base()))
    }

    /// create / create2 / createContainer / createTTL. Returns the created path.
    pub async fn create(
        &mut self,
        opcode: i32,
        req: &CreateRequest,
        caller: &Caller<'_>,
    ) -> Result<ZnodePath, OpError> {
        // upstream's order (PrepRequestProcessor.pRequest2TxnCreate): mode and TTL, the parent
        // path, the ACL, the parent, CREATE on it, the sequence suffix, THEN the path itself.
        let Some(flag_mode) = CreateMode::from_flag(req.flags) else {
            return bad_args();
        };
        let mode = match opcode {
            // createTTL takes only the TTL modes
            op::CREATE_TTL if flag_mode.ttl => flag_mode,
            op::CREATE_TTL => return bad_args(),
            _ if flag_mode.ttl => return bad_args(),
            // createContainer always makes a container (the sequential flag still counts)
            op::CREATE_CONTAINER => CreateMode {
                ephemeral: false,
                sequential: flag_mode.sequential,
                container: true,
                ttl: false,
            },
            _ => flag_mode,
        };
        let ttl = if mode.ttl { req.ttl.unwrap_or(0) } else { 0 };
        if mode.ttl && (ttl <= 0 || ttl > MAX_TTL) {
            return bad_args();
        }
        let parent = parent_of(&req.path)?;
        let acl = fixup(caller.identity, &req.acl).ok_or(OpError::Zk(err::INVALID_ACL))?;
        let (parent, mut parent_node) = self.existing(parent).await?;
        self.depend(&parent, |d| d.acl = true);
        if !caller.identity.allowed(&parent_node.acl, perms::CREATE) {
            return Err(OpError::Zk(err::NO_AUTH));
        }
        let mut name = req.path.clone();
        if mode.sequential {
            self.depend(&parent, |d| d.counts = true);
            name.push_str(&format!("{:010}", parent_node.children.creates));
        }
        let Ok(path) = ZnodePath::parse(&name) else {
            return bad_args();
        };
        if path.is_root() || self.node(&path).await?.is_some() {
            return Err(OpError::Zk(err::NODE_EXISTS));
        }
        if parent_node.is_ephemeral() {
            return Err(OpError::Zk(err::NO_CHILDREN_FOR_EPHEMERALS));
        }
        if path.depth() > crate::layout::MAX_DEPTH {
            return bad_args();
        }
        let kind = if mode.ephemeral {
            NodeKind::Ephemeral
        } else if mode.container {
            NodeKind::Container
        } else if mode.ttl {
            NodeKind::Ttl
        } else {
            NodeKind::Persistent
        };
        let pending = RecordRev {
            create: PENDING,
            modified: PENDING,
            version: 1,
        };
        let node = Znode {
            data: DataRecord {
                kind,
                ctime: self.now_ms,
                mtime: self.now_ms,
                owner: if mode.ephemeral { caller.session } else { 0 },
                ttl,
                data: req.data.clone(),
                version_offset: 0,
                repeats: 0,
                created: 0,
            },
            children: ChildrenRecord::default(),
            base: ChildrenRecord::default(),
            acl,
            aversion_offset: 0,
            data_rev: pending,
            children_rev: pending,
            acl_rev: pending,
            plus_rev: RecordRev::default(),
            minus_rev: RecordRev::default(),
        };
        parent_node.children.creates = parent_node.children.creates.wrapping_add(1);
        parent_node.children.count += 1;
        parent_node.plus_rev.modified = PENDING;
        self.set(&parent, Some(parent_node));
        self.mark(&parent, |d| d.child_creates += 1);
        self.set(&path, Some(node));
        self.mark_visible(&path, ZnodeEvent::Created, |d| d.created = true);
        let layout = self.store.layout();
        if mode.ephemeral {
            self.index_ops.push(put(
                layout.ephemeral_key(caller.session, &path),
                Vec::new(),
                0,
            ));
        }
        if mode.container || mode.ttl {
            self.index_ops
                .push(put(layout.timed_key(&path), Vec::new(), 0));
        }
        Ok(path)
    }

    /// delete (with upstream's checks when `caller` is given; unchecked for session expiry and
    /// the reaper).
    pub async fn delete(
        &mut self,
        path_str: &str,
        version: i32,
        caller: Option<&Caller<'_>>,
    ) -> Result<(), OpError> {
        // upstream (pRequest2TxnDelete): no path validation, only the parent path (BadArguments
        // without a slash, with a NUL or for the built-in nodes), the parent, DELETE on it,
        // then the node
        if special_str(path_str) {
            return bad_args();
        }
        let (parent, mut parent_node) = self.existing(parent_of(path_str)?).await?;
        if let Some(c) = caller {
            self.depend(&parent, |d| d.acl = true);
            if !c.identity.allowed(&parent_node.acl, perms::DELETE) {
                return Err(OpError::Zk(err::NO_AUTH));
            }
        }
        let Ok(path) = ZnodePath::parse(path_str) else {
            return Err(OpError::Zk(err::NO_NODE));
        };
        let Some(node) = self.node(&path).await? else {
            return Err(OpError::Zk(err::NO_NODE));
        };
        self.depend(&path, |d| {
            d.data = true;
            d.counts = true;
        });
        check_version(version, node.data_version())?;
        if node.children.count > 0 {
            return Err(OpError::Zk(err::NOT_EMPTY));
        }
        parent_node.children.count -= 1;
        parent_node.minus_rev.modified = PENDING;
        self.set(&parent, Some(parent_node));
        self.mark(&parent, |d| d.child_deletes += 1);
        self.set(&path, None);
        self.mark_visible(&path, ZnodeEvent::Deleted, |_| {});
        let layout = self.store.layout();
        match node.data.kind {
            NodeKind::Ephemeral => self
                .index_ops
                .push(delete(layout.ephemeral_key(node.data.owner, &path))),
            NodeKind::Container | NodeKind::Ttl => {
                self.index_ops.push(delete(layout.timed_key(&path)))
            }
            NodeKind::Persistent => {}
        }
        Ok(())
    }

    pub async fn set_data(
        &mut self,
        path_str: &str,
        data: Option<Vec<u8>>,
        version: i32,
        caller: &Caller<'_>,
    ) -> Result<ZnodePath, OpError> {
        let Ok(path) = ZnodePath::parse(path_str) else {
            return bad_args();
        };
        let Some(mut node) = self.node(&path).await? else {
            return Err(OpError::Zk(err::NO_NODE));
        };
        self.depend(&path, |d| {
            d.acl = true;
            d.data = true;
        });
        if !caller.identity.allowed(&node.acl, perms::WRITE) {
            return Err(OpError::Zk(err::NO_AUTH));
        }
        check_version(version, node.data_version())?;
        node.data.data = data;
        node.data.mtime = self.now_ms;
        node.data_rev.modified = PENDING;
        node.data_rev.version += 1;
        self.set(&path, Some(node));
        self.mark_visible(&path, ZnodeEvent::DataChanged, |d| {
            d.data = true;
            d.data_sets += 1;
        });
        Ok(path)
    }

    pub async fn set_acl(
        &mut self,
        path_str: &str,
        acl: &[Acl],
        version: i32,
        caller: &Caller<'_>,
    ) -> Result<ZnodePath, OpError> {
        let Ok(path) = ZnodePath::parse(path_str) else {
            return bad_args();
        };
        let acl = fixup(caller.identity, acl).ok_or(OpError::Zk(err::INVALID_ACL))?;
        let Some(mut node) = self.node(&path).await? else {
            return Err(OpError::Zk(err::NO_NODE));
        };
        self.depend(&path, |d| d.acl = true);
        if !caller.identity.allowed(&node.acl, perms::ADMIN) {
            return Err(OpError::Zk(err::NO_AUTH));
        }
        check_version(
            version,
            node.acl_rev.version - 1 + node.aversion_offset as i64,
        )?;
        node.acl = acl;
        node.acl_rev.modified = PENDING;
        node.acl_rev.version += 1;
        self.set(&path, Some(node));
        self.mark(&path, |d| d.acl = true);
        Ok(path)
    }

    /// check (a version guard inside multi).
    pub async fn check(
        &mut self,
        path_str: &str,
        version: i32,
        caller: &Caller<'_>,
    ) -> Result<ZnodePath, OpError> {
        let Ok(path) = ZnodePath::parse(path_str) else {
            return bad_args();
        };
        let Some(node) = self.node(&path).await? else {
            return Err(OpError::Zk(err::NO_NODE));
        };
        self.depend(&path, |d| {
            d.acl = true;
            d.data = true;
        });
        if !caller.identity.allowed(&node.acl, perms::READ) {
            return Err(OpError::Zk(err::NO_AUTH));
        }
        check_version(version, node.data_version())?;
        Ok(path)
    }

    /// Adds a raw write to the commit (session bookkeeping).
    pub fn also(&mut self, op: RequestOp) {
        self.index_ops.push(op);
    }

    /// Whether committing would write anything.
    pub fn writes_anything(&self) -> bool {
        !self.dirty.is_empty() || !self.index_ops.is_empty()
    }

    /// Commits the plan: `Ok(Some(revision))`, or `Ok(None)` if a guard failed.
    pub async fn commit(self) -> Result<Option<i64>, StoreError> {
        let layout = self.store.layout();
        let key = |p: &ZnodePath, part| layout.node_key(p, part);
        let mut compare: Vec<Compare> = Vec::new();
        for (path, n) in &self.loaded {
            let Some(n) = n else {
                compare.push(create_is(key(path, Part::Data), 0));
                continue;
            };
            // the same incarnation of the znode
            compare.push(create_is(key(path, Part::Data), n.data_rev.create));
            let deps = self.deps.get(path).copied().unwrap_or_default();
            let dirty = self.dirty.iter().find(|(p, _)| p == path).map(|(_, d)| *d);
            let rewrites_base = dirty.is_some_and(|d| d.child_creates > 1 || d.child_deletes > 1);
            if deps.data || dirty.is_some_and(|d| d.data) {
                compare.push(mod_is(key(path, Part::Data), n.data_rev.modified));
            }
            if deps.acl || dirty.is_some_and(|d| d.acl) {
                compare.push(mod_is(key(path, Part::Acl), n.acl_rev.modified));
            }
            if deps.counts || rewrites_base {
                compare.push(mod_is(key(path, Part::Children), n.children_rev.modified));
            }
            if deps.counts {
                compare.push(version_is(key(path, Part::Plus), n.plus_rev.version));
                compare.push(version_is(key(path, Part::Minus), n.minus_rev.version));
            }
        }
        let mut writes = Vec::new();
        // znodes whose data record changes, in the order the plan changed them (the others'
        // records raise no event: their place does not matter)
        let mut dirty: Vec<&(ZnodePath, Dirty)> = self.dirty.iter().collect();
        dirty.sort_by_key(|(_, d)| d.visible_at.unwrap_or(u32::MAX));
        for (path, d) in dirty {
            let now = self.current.get(path).and_then(|n| n.as_ref());
            let before = self.loaded.get(path).and_then(|n| n.as_ref());
            match now {
                None => {
                    if before.is_some() {
                        for part in Part::ALL {
                            writes.push(delete(key(path, part)));
                        }
                    }
                }
                Some(n) if d.created => {
                    writes.push(put(key(path, Part::Data), stored_data(n, before, d), 0));
                    // fresh counters: the base holds whatever the plan did under it already
                    writes.push(put(key(path, Part::Children), n.children.encode(), 0));
                    writes.push(put(key(path, Part::Acl), stored_acl(n, before), 0));
                    if let Some(b) = before {
                        // re-created: the old znode's counters must not count for the new one
                        if b.plus_rev.version > 0 {
                            writes.push(delete(key(path, Part::Plus)));
                        }
                        if b.minus_rev.version > 0 {
                            writes.push(delete(key(path, Part::Minus)));
                        }
                    }
                }
                Some(n) => {
                    if d.data {
                        writes.push(put(key(path, Part::Data), stored_data(n, before, d), 0));
                    }
                    if d.acl {
                        writes.push(put(key(path, Part::Acl), stored_acl(n, before), 0));
                    }
                    if d.child_creates > 1 || d.child_deletes > 1 {
                        // several children at once: one counter bump cannot say it, so the
                        // base record takes the whole change
                        let mut base = n.base;
                        base.creates = base.creates.wrapping_add(d.child_creates);
                        base.count += d.child_creates - d.child_deletes;
                        writes.push(put(key(path, Part::Children), base.encode(), 0));
                    } else {
                        if d.child_creates == 1 {
                            writes.push(put(key(path, Part::Plus), Vec::new(), 0));
                        }
                        if d.child_deletes == 1 {
                            writes.push(put(key(path, Part::Minus), Vec::new(), 0));
                        }
                    }
                }
            }
        }
        // etcd refuses a txn that names a key twice: of the index writes to one key (a node
        // created and deleted by one multi), the last one says the outcome
        let mut index: Vec<RequestOp> = Vec::new();
        for op in self.index_ops.into_iter().rev() {
            let k = op_key(&op);
            if !index.iter().any(|o| op_key(o) == k) {
                index.push(op);
            }
        }
        index.reverse();
        writes.extend(index);
        if changes_a_znode_twice(&self.events) {
            writes.push(put(
                layout.event_order_key(),
                encode_event_order(&self.events),
                0,
            ));
        }
        self.store.commit(compare, writes).await
    }
}

/// The data record to store for `n` (the plan's znode; `before`: as it was loaded; `d`: what
/// the plan did to it). The put leaves the key at etcd version `before`'s + 1 (1 for a new
/// key), however many times the plan set the data, so the record carries whatever else the
/// znode's version moved by, and the data events its one change stands for beyond the first.
/// A znode the plan deleted and created again keeps its key's etcd create revision, so its
/// record names its own czxid: this write's revision.
fn stored_data(n: &Znode, before: Option<&Znode>, d: &Dirty) -> Vec<u8> {
    let etcd_version_after = before.map_or(1, |b| b.data_rev.version + 1);
    let mut record = n.data.clone();
    record.version_offset = (n.data_version() - (etcd_version_after - 1)) as i32;
    record.repeats = if d.created {
        d.data_sets
    } else {
        (d.data_sets - 1).max(0)
    };
    if d.created {
        record.created = if before.is_some() { CREATED_HERE } else { 0 };
    }
    record.encode()
}

/// The ACL record to store for `n` (the plan's znode; `before`: as it was loaded). The put
/// leaves the key at etcd version `before`'s + 1 (1 for a new key), so the record's offset
/// makes up the difference to the aversion the plan left: for a znode the plan re-created,
/// the old znode's ACL versions must not count.
fn stored_acl(n: &Znode, before: Option<&Znode>) -> Vec<u8> {
    let etcd_version_after = before.map_or(1, |b| b.acl_rev.version + 1);
    let aversion = n.acl_rev.version - 1 + i64::from(n.aversion_offset);
    encode_acl_record(&n.acl, (aversion - (etcd_version_after - 1)) as i32)
}

/// Whether a plan's events name a znode more than once: its records, one change per key,
/// can then not say the order of its events (a watcher reads them from `P order` instead).
fn changes_a_znode_twice(events: &[(ZnodeEvent, ZnodePath)]) -> bool {
    let mut seen = std::collections::HashSet::new();
    events.iter().any(|(_, path)| !seen.insert(path))
}

fn op_key(op: &RequestOp) -> Option<&[u8]> {
    use synod_proto::etcdserverpb::request_op::Request as R;
    match &op.request {
        Some(R::RequestPut(p)) => Some(&p.key),
        Some(R::RequestDeleteRange(d)) => Some(&d.key),
        _ => None,
    }
}

/// Replaces the `PENDING` zxids of a Stat handed out by a plan with the committed revision.
pub fn finish(stat: &mut Stat, revision: i64) {
    for z in [&mut stat.czxid, &mut stat.mzxid, &mut stat.pzxid] {
        if *z == PENDING {
            *z = revision;
        }
    }
}
