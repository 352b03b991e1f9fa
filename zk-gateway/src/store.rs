//! The znode store over the etcd v3 API: reading znodes and children, the built-in nodes, and
//! committing a write plan (`txn.rs`) as one guarded etcd Txn. This is the only module that
//! builds etcd requests for znodes; it knows the layout, never the wire protocol.

use std::sync::Arc;

use synod_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_proto::etcdserverpb::request_op::Request as Op;
use synod_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use synod_proto::mvccpb::KeyValue;
use tonic::Status;

use crate::backend::SharedBackend;
use crate::jute::{Acl, Id};
use crate::layout::{encode_acl_record, ChildrenRecord, DataRecord, KeyKind, Layout, Part};
use crate::path::ZnodePath;
use crate::proto::perms;
use crate::znode::{CorruptRecord, Znode};

/// A znode every ZooKeeper server has from the start: its path, child count, data, ACL, and
/// what its ACL version is offset by.
type BuiltinZnode = (&'static str, i32, Option<Vec<u8>>, Vec<Acl>, i32);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Backend(#[from] Status),
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
}

/// The store as the handlers see it.
#[derive(Clone)]
pub struct ZkStore {
    backend: SharedBackend,
    layout: Arc<Layout>,
    /// Revisions at or below this are the built-in nodes' (shown as zxid 0).
    base: i64,
}

pub fn put(key: Vec<u8>, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key,
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub fn delete(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key,
            ..Default::default()
        })),
    }
}

/// Guard: the key's create revision is `rev` (0: the key is absent).
pub fn create_is(key: Vec<u8>, rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key,
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// Guard: the key's version is `v`.
pub fn version_is(key: Vec<u8>, v: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Version as i32,
        key,
        target_union: Some(TargetUnion::Version(v)),
        ..Default::default()
    }
}

/// Guard: the key's mod revision is `rev` (0: the key is absent).
pub fn mod_is(key: Vec<u8>, rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key,
        target_union: Some(TargetUnion::ModRevision(rev)),
        ..Default::default()
    }
}

fn world_all() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

impl ZkStore {
    /// Connects the store and creates the built-in nodes (`/`, `/zookeeper`,
    /// `/zookeeper/quota`, `/zookeeper/config`) and the password secret if this store has
    /// never seen a gateway.
    pub async fn open(backend: SharedBackend, layout: Layout) -> Result<ZkStore, StoreError> {
        let layout = Arc::new(layout);
        let mut store = ZkStore {
            backend,
            layout,
            base: 0,
        };
        let root = ZnodePath::root();
        let (root_node, _) = store.read(&root, 0).await?;
        let base = match root_node {
            Some(n) => n.data_rev.create,
            None => store.bootstrap().await?,
        };
        store.base = base;
        Ok(store)
    }

    async fn bootstrap(&self) -> Result<i64, StoreError> {
        let l = &self.layout;
        let p = |s: &str| ZnodePath::from_trusted(s.to_string());
        let mut ops = Vec::new();
        // upstream: /zookeeper/config is world-readable only, with aversion -1
        let read_only = vec![Acl {
            perms: perms::READ,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }];
        let nodes: [BuiltinZnode; 4] = [
            ("/", 1, Some(Vec::new()), world_all(), 0),
            ("/zookeeper", 2, Some(Vec::new()), world_all(), 0),
            ("/zookeeper/quota", 0, Some(Vec::new()), world_all(), 0),
            ("/zookeeper/config", 0, Some(Vec::new()), read_only, -1),
        ];
        for (path, children, data, acl, aversion_offset) in nodes {
            let path = p(path);
            let d = DataRecord {
                data,
                ..Default::default()
            };
            ops.push(put(l.node_key(&path, Part::Data), d.encode(), 0));
            ops.push(put(
                l.node_key(&path, Part::Children),
                ChildrenRecord {
                    creates: 0,
                    count: children,
                }
                .encode(),
                0,
            ));
            ops.push(put(
                l.node_key(&path, Part::Acl),
                encode_acl_record(&acl, aversion_offset),
                0,
            ));
        }
        let secret: [u8; 32] = rand::random();
        ops.push(put(l.secret_key(), secret.to_vec(), 0));
        let root_data = l.node_key(&ZnodePath::root(), Part::Data);
        let txn = TxnRequest {
            compare: vec![mod_is(root_data.clone(), 0)],
            success: ops,
            failure: vec![],
        };
        let r = self.backend.txn(txn).await?;
        if r.succeeded {
            return Ok(r.header.map_or(0, |h| h.revision));
        }
        // Another gateway bootstrapped first.
        let (root, _) = self.read(&ZnodePath::root(), 0).await?;
        root.map(|n| n.data_rev.create)
            .ok_or(StoreError::Corrupt(CorruptRecord))
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    pub fn base(&self) -> i64 {
        self.base
    }

    /// A range that reflects at least revision `min_rev`: served by the local member
    /// (serializable) unless that member is behind, then linearizable.
    pub async fn range(
        &self,
        mut req: RangeRequest,
        min_rev: i64,
    ) -> Result<(Vec<KeyValue>, i64), StoreError> {
        req.serializable = true;
        let r = self.backend.range(req.clone()).await?;
        let rev = r.header.as_ref().map_or(0, |h| h.revision);
        if rev >= min_rev {
            return Ok((r.kvs, rev));
        }
        req.serializable = false;
        let r = self.backend.range(req).await?;
        let rev = r.header.as_ref().map_or(0, |h| h.revision);
        Ok((r.kvs, rev))
    }

    /// A linearizable no-op read: the store's current revision (ZooKeeper's `sync`).
    pub async fn current_revision(&self) -> Result<i64, StoreError> {
        let r = self
            .backend
            .range(RangeRequest {
                key: self.layout.secret_key(),
                count_only: true,
                ..Default::default()
            })
            .await?;
        Ok(r.header.map_or(0, |h| h.revision))
    }

    /// The znode at `path` (or `None`) and the revision it was read at.
    pub async fn read(
        &self,
        path: &ZnodePath,
        min_rev: i64,
    ) -> Result<(Option<Znode>, i64), StoreError> {
        self.read_at(path, min_rev, 0).await
    }

    /// As `read`, but at revision `at` if it is not 0 (so that several reads see one
    /// snapshot).
    pub async fn read_at(
        &self,
        path: &ZnodePath,
        min_rev: i64,
        at: i64,
    ) -> Result<(Option<Znode>, i64), StoreError> {
        let (key, range_end) = self.layout.node_range(path);
        let (kvs, rev) = self
            .range(
                RangeRequest {
                    key,
                    range_end,
                    revision: at,
                    ..Default::default()
                },
                min_rev,
            )
            .await?;
        let rev = if at > 0 { at } else { rev };
        let mut parts = [None, None, None, None, None];
        for kv in &kvs {
            if let KeyKind::Node(_, part) = self.layout.parse(&kv.key) {
                let i = match part {
                    Part::Data => 0,
                    Part::Children => 1,
                    Part::Acl => 2,
                    Part::Plus => 3,
                    Part::Minus => 4,
                };
                parts[i] = Some(kv);
            }
        }
        Ok((
            Znode::from_kvs(parts[0], parts[1], parts[2], parts[3], parts[4])?,
            rev,
        ))
    }

    /// The names of `path`'s children, sorted as the store keeps them (by name bytes).
    pub async fn children(
        &self,
        path: &ZnodePath,
        min_rev: i64,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let (key, range_end) = self.layout.children_range(path);
        let (kvs, rev) = self
            .range(
                RangeRequest {
                    key,
                    range_end,
                    keys_only: true,
                    ..Default::default()
                },
                min_rev,
            )
            .await?;
        let mut names = Vec::new();
        for kv in &kvs {
            if let KeyKind::Node(p, Part::Data) = self.layout.parse(&kv.key) {
                names.push(p.name().to_string());
            }
        }
        Ok((names, rev))
    }

    /// The number of descendants of `path` (getAllChildrenNumber): one keys-only range per
    /// level, counting data records (a znode's counters exist only once used).
    pub async fn descendants(&self, path: &ZnodePath, min_rev: i64) -> Result<i32, StoreError> {
        let mut total: i64 = 0;
        let mut depth = path.depth() + 1;
        while depth <= crate::layout::MAX_DEPTH {
            let (key, range_end) = self.layout.level_range(path, depth);
            let r = self
                .backend
                .range(RangeRequest {
                    key,
                    range_end,
                    keys_only: true,
                    serializable: min_rev == 0,
                    ..Default::default()
                })
                .await?;
            let here = r
                .kvs
                .iter()
                .filter(|kv| matches!(self.layout.parse(&kv.key), KeyKind::Node(_, Part::Data)))
                .count() as i64;
            if here == 0 {
                break;
            }
            total += here;
            depth += 1;
        }
        Ok(total.min(i32::MAX as i64) as i32)
    }

    /// The paths under `prefix` in the ephemeral index of `session`.
    pub async fn ephemerals_of(
        &self,
        session: i64,
        min_rev: i64,
    ) -> Result<Vec<ZnodePath>, StoreError> {
        let (key, range_end) = self.layout.ephemerals_range(Some(session));
        let (kvs, _) = self
            .range(
                RangeRequest {
                    key,
                    range_end,
                    keys_only: true,
                    ..Default::default()
                },
                min_rev,
            )
            .await?;
        Ok(kvs
            .iter()
            .filter_map(|kv| match self.layout.parse(&kv.key) {
                KeyKind::Ephemeral(_, p) => Some(p),
                _ => None,
            })
            .collect())
    }

    /// Every key of a kind in `[key, range_end)`, keys only.
    pub async fn keys(
        &self,
        (key, range_end): (Vec<u8>, Vec<u8>),
    ) -> Result<Vec<KeyKind>, StoreError> {
        let r = self
            .backend
            .range(RangeRequest {
                key,
                range_end,
                keys_only: true,
                ..Default::default()
            })
            .await?;
        Ok(r.kvs.iter().map(|kv| self.layout.parse(&kv.key)).collect())
    }

    /// One key's value and metadata.
    pub async fn get(&self, key: Vec<u8>) -> Result<Option<KeyValue>, StoreError> {
        let r = self
            .backend
            .range(RangeRequest {
                key,
                ..Default::default()
            })
            .await?;
        Ok(r.kvs.into_iter().next())
    }

    /// Runs a guarded txn: `Ok(Some(revision))` if the guards held and the writes applied,
    /// `Ok(None)` if a guard failed (someone else wrote first; the caller re-plans).
    pub async fn commit(
        &self,
        compare: Vec<Compare>,
        writes: Vec<RequestOp>,
    ) -> Result<Option<i64>, StoreError> {
        let r = self
            .backend
            .txn(TxnRequest {
                compare,
                success: writes,
                failure: vec![],
            })
            .await?;
        let rev = r.header.map_or(0, |h| h.revision);
        Ok(r.succeeded.then_some(rev))
    }
}
