//! The ZooKeeper request handlers: one function per opcode group, from a decoded request to the
//! reply header's error, zxid and body. Upstream's checks and their order are the spec (see
//! `txn.rs` for writes). Handlers go through `ZkStore`, `Watches` and `Sessions` only; errors
//! become ZooKeeper codes here and nowhere else.

use crate::acl::Identity;
use crate::jute::{ClientInfo, MultiOp, MultiResult, Request, Response, SetWatches, Stat};
use crate::path::ZnodePath;
use crate::proto::{err, event, op, perms, watcher_type};
use crate::session::now_ms;
use crate::store::{StoreError, ZkStore};
use crate::txn::{finish, Caller, OpError, Plan};
use crate::watches::{ConnId, Table, WatchKind, Watches};

/// How many times a write is re-planned when another writer changed what it read.
const MAX_ATTEMPTS: usize = 64;

/// What a handler answers.
pub struct Reply {
    pub zxid: i64,
    pub err: i32,
    pub body: Response,
    /// Events the reply must be preceded by (setWatches): (type, path).
    pub events: Vec<(i32, String)>,
}

impl Reply {
    fn ok(zxid: i64, body: Response) -> Reply {
        Reply {
            zxid,
            err: err::OK,
            body,
            events: Vec::new(),
        }
    }
    fn error(zxid: i64, code: i32) -> Reply {
        Reply {
            zxid,
            err: code,
            body: Response::Empty,
            events: Vec::new(),
        }
    }
}

/// One connection's view for its handlers.
pub struct Ctx<'a> {
    pub store: &'a ZkStore,
    pub watches: &'a Watches,
    pub conn: ConnId,
    pub session: i64,
    pub identity: &'a Identity,
    /// The highest zxid this session has been shown: reads reflect at least this.
    pub seen: i64,
}

impl Ctx<'_> {
    fn caller(&self) -> Caller<'_> {
        Caller {
            session: self.session,
            identity: self.identity,
        }
    }
}

/// A read's path: upstream looks reads up without validating them, so "" is the root and an
/// invalid path is simply not found.
fn read_path(path: &str) -> Option<ZnodePath> {
    if path.is_empty() {
        return Some(ZnodePath::root());
    }
    ZnodePath::parse(path).ok()
}

/// Handles a request other than ping, auth, closeSession (the connection does those).
pub async fn handle(ctx: &Ctx<'_>, req: &Request) -> Result<Reply, StoreError> {
    match req {
        Request::Create { .. }
        | Request::Delete(_)
        | Request::SetData(_)
        | Request::SetAcl(_)
        | Request::Check { .. } => write(ctx, req).await,
        Request::Exists { path, watch } => {
            let Some(p) = read_path(path) else {
                return Ok(Reply::error(ctx.seen, err::NO_NODE));
            };
            let (node, rev) = ctx.store.read(&p, ctx.seen).await?;
            if *watch {
                ctx.watches.add(ctx.conn, WatchKind::Data, &p);
            }
            Ok(match node {
                Some(n) => Reply::ok(rev, Response::Stat(n.stat(ctx.store.base()))),
                None => Reply::error(rev, err::NO_NODE),
            })
        }
        Request::GetData { path, watch } => get_data(ctx, path, *watch).await,
        Request::GetChildren { path, watch } => get_children(ctx, path, *watch, false).await,
        Request::GetChildren2 { path, watch } => get_children(ctx, path, *watch, true).await,
        Request::GetAcl { path } => {
            let Some(p) = read_path(path) else {
                return Ok(Reply::error(ctx.seen, err::NO_NODE));
            };
            let (node, rev) = ctx.store.read(&p, ctx.seen).await?;
            Ok(match node {
                // upstream (3.6+): reading an ACL needs READ or ADMIN
                Some(n) if !ctx.identity.allowed(&n.acl, perms::READ | perms::ADMIN) => {
                    Reply::error(rev, err::NO_AUTH)
                }
                Some(n) => {
                    // upstream masks digest hashes for a caller without ADMIN
                    let admin = ctx.identity.allowed(&n.acl, perms::ADMIN);
                    let acl = n
                        .acl
                        .iter()
                        .map(|a| {
                            let mut a = a.clone();
                            if !admin && a.id.scheme == "digest" {
                                if let Some((user, _)) = a.id.id.split_once(':') {
                                    a.id.id = format!("{user}:x");
                                }
                            }
                            a
                        })
                        .collect();
                    Reply::ok(
                        rev,
                        Response::GetAcl {
                            stat: n.stat(ctx.store.base()),
                            acl,
                        },
                    )
                }
                None => Reply::error(rev, err::NO_NODE),
            })
        }
        Request::Sync { path } => {
            let rev = ctx.store.current_revision().await?;
            Ok(Reply::ok(rev, Response::Sync { path: path.clone() }))
        }
        // upstream refuses a multi holding a read, or a multiRead holding a write, while
        // deserializing it: MarshallingError, header only, the session carries on
        Request::Multi(ops) if ops.iter().any(is_read) => {
            Ok(Reply::error(ctx.seen, err::MARSHALLING_ERROR))
        }
        Request::MultiRead(ops) if !ops.iter().all(is_read) => {
            Ok(Reply::error(ctx.seen, err::MARSHALLING_ERROR))
        }
        Request::Multi(ops) => multi(ctx, ops).await,
        Request::MultiRead(ops) => multi_read(ctx, ops).await,
        Request::Reconfig => Ok(Reply::error(ctx.seen, err::RECONFIG_DISABLED)),
        Request::CheckWatches {
            path,
            watcher_type: t,
        }
        | Request::RemoveWatches {
            path,
            watcher_type: t,
        } => {
            let remove = matches!(req, Request::RemoveWatches { .. });
            // 3.8 knows Children, Data and Any here (any other type fails to deserialize)
            let tables: &[Table] = match *t {
                watcher_type::CHILDREN => &[Table::Child],
                watcher_type::DATA => &[Table::Data],
                watcher_type::ANY => &[Table::Child, Table::Data],
                _ => return Ok(Reply::error(ctx.seen, err::MARSHALLING_ERROR)),
            };
            let Some(p) = read_path(path) else {
                return Ok(Reply::error(ctx.seen, err::NO_WATCHER));
            };
            let mut found = false;
            for table in tables {
                found |= if remove {
                    ctx.watches.remove(ctx.conn, *table, &p)
                } else {
                    // upstream 3.8 answers for any connection's watch on the path
                    ctx.watches.watched(*table, &p)
                };
            }
            Ok(if found {
                Reply::ok(ctx.seen, Response::Empty)
            } else {
                Reply::error(ctx.seen, err::NO_WATCHER)
            })
        }
        Request::SetWatches(sw) => set_watches(ctx, sw).await,
        Request::GetEphemerals { prefix } => {
            let mut paths: Vec<String> = ctx
                .store
                .ephemerals_of(ctx.session, ctx.seen)
                .await?
                .into_iter()
                .map(|p| p.to_string())
                .filter(|p| p.starts_with(prefix.as_str()))
                .collect();
            paths.sort();
            Ok(Reply::ok(
                ctx.seen,
                Response::GetEphemerals { ephemerals: paths },
            ))
        }
        Request::GetAllChildrenNumber { path } => {
            let Some(p) = read_path(path) else {
                return Ok(Reply::error(ctx.seen, err::NO_NODE));
            };
            let (node, rev) = ctx.store.read(&p, ctx.seen).await?;
            let Some(n) = node else {
                return Ok(Reply::error(rev, err::NO_NODE));
            };
            if !ctx.identity.allowed(&n.acl, perms::READ) {
                return Ok(Reply::error(rev, err::NO_AUTH));
            }
            let total = ctx.store.descendants(&p, rev).await?;
            Ok(Reply::ok(rev, Response::GetAllChildrenNumber { total }))
        }
        Request::AddWatch { path, mode } => {
            let kind = match *mode {
                watcher_type::ADD_PERSISTENT => WatchKind::Persistent,
                watcher_type::ADD_PERSISTENT_RECURSIVE => WatchKind::Recursive,
                _ => return Ok(Reply::error(ctx.seen, err::MARSHALLING_ERROR)),
            };
            let Some(p) = read_path(path) else {
                return Ok(Reply::error(ctx.seen, err::BAD_ARGUMENTS));
            };
            ctx.watches.add(ctx.conn, kind, &p);
            Ok(Reply::ok(ctx.seen, Response::ErrorResponse { err: 0 }))
        }
        Request::WhoAmI => Ok(Reply::ok(
            ctx.seen,
            Response::WhoAmI {
                // upstream's order (see `Identity::ordered`), a digest id by its user name
                // only (`getUserName`)
                client_info: ctx
                    .identity
                    .ordered()
                    .into_iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                            _ => id.id.clone(),
                        },
                    })
                    .collect(),
            },
        )),
        // upstream: a client's deleteContainer is BadArguments
        Request::DeleteContainer { .. } => Ok(Reply::error(ctx.seen, err::BAD_ARGUMENTS)),
        // the connection answers sasl (as a server without SASL)
        Request::Sasl => Ok(Reply::ok(ctx.seen, Response::Empty)),
        // The connection answers these itself.
        Request::Ping | Request::Auth { .. } | Request::CloseSession => {
            Ok(Reply::ok(ctx.seen, Response::Empty))
        }
    }
}

async fn get_data(ctx: &Ctx<'_>, path: &str, watch: bool) -> Result<Reply, StoreError> {
    let Some(p) = read_path(path) else {
        return Ok(Reply::error(ctx.seen, err::NO_NODE));
    };
    let (node, rev) = ctx.store.read(&p, ctx.seen).await?;
    let Some(n) = node else {
        return Ok(Reply::error(rev, err::NO_NODE));
    };
    if !ctx.identity.allowed(&n.acl, perms::READ) {
        return Ok(Reply::error(rev, err::NO_AUTH));
    }
    if watch {
        ctx.watches.add(ctx.conn, WatchKind::Data, &p);
    }
    Ok(Reply::ok(
        rev,
        Response::GetData {
            stat: n.stat(ctx.store.base()),
            data: n.data.data,
        },
    ))
}

async fn get_children(
    ctx: &Ctx<'_>,
    path: &str,
    watch: bool,
    with_stat: bool,
) -> Result<Reply, StoreError> {
    let Some(p) = read_path(path) else {
        return Ok(Reply::error(ctx.seen, err::NO_NODE));
    };
    let (node, rev) = ctx.store.read(&p, ctx.seen).await?;
    let Some(n) = node else {
        return Ok(Reply::error(rev, err::NO_NODE));
    };
    if !ctx.identity.allowed(&n.acl, perms::READ) {
        return Ok(Reply::error(rev, err::NO_AUTH));
    }
    // The children at the revision of the node read (or later, never earlier).
    let (children, crev) = ctx.store.children(&p, rev).await?;
    let (node, rev) = if crev > rev {
        ctx.store.read(&p, crev).await?
    } else {
        (Some(n), rev)
    };
    let Some(n) = node else {
        return Ok(Reply::error(rev, err::NO_NODE));
    };
    if watch {
        ctx.watches.add(ctx.conn, WatchKind::Child, &p);
    }
    Ok(Reply::ok(
        rev,
        if with_stat {
            Response::GetChildren2 {
                children,
                stat: n.stat(ctx.store.base()),
            }
        } else {
            Response::GetChildren { children }
        },
    ))
}

fn is_read(op: &MultiOp) -> bool {
    matches!(op, MultiOp::GetData { .. } | MultiOp::GetChildren { .. })
}

/// One write operation on a plan: upstream's checks, then the reply body.
async fn plan_one(
    plan: &mut Plan<'_>,
    req: &Request,
    caller: &Caller<'_>,
) -> Result<Response, OpError> {
    match req {
        Request::Create {
            op: opcode,
            req: create,
        } => {
            let path = plan.create(*opcode, create, caller).await?;
            Ok(match *opcode {
                op::CREATE => Response::Create {
                    path: path.to_string(),
                },
                _ => Response::Create2 {
                    stat: plan.stat(&path).unwrap_or_default(),
                    path: path.to_string(),
                },
            })
        }
        Request::Delete(d) => {
            plan.delete(&d.path, d.version, Some(caller)).await?;
            Ok(Response::Empty)
        }
        Request::SetData(s) => {
            let path = plan
                .set_data(&s.path, s.data.clone(), s.version, caller)
                .await?;
            Ok(Response::Stat(plan.stat(&path).unwrap_or_default()))
        }
        Request::SetAcl(s) => {
            let path = plan.set_acl(&s.path, &s.acl, s.version, caller).await?;
            Ok(Response::Stat(plan.stat(&path).unwrap_or_default()))
        }
        Request::Check { path, version } => {
            let p = plan.check(path, *version, caller).await?;
            Ok(Response::Stat(plan.stat(&p).unwrap_or_default()))
        }
        _ => Err(OpError::Zk(err::BAD_ARGUMENTS)),
    }
}

/// Plans and commits one write, re-planning while other writers interfere.
async fn write(ctx: &Ctx<'_>, req: &Request) -> Result<Reply, StoreError> {
    let caller = ctx.caller();
    for _ in 0..MAX_ATTEMPTS {
        let mut plan = Plan::new(ctx.store, ctx.seen, now_ms());
        let body = match plan_one(&mut plan, req, &caller).await {
            Ok(b) => b,
            Err(OpError::Zk(code)) => {
                return Ok(Reply::error(plan.read_revision().max(ctx.seen), code));
            }
            Err(OpError::Store(e)) => return Err(e),
        };
        if !plan.writes_anything() {
            return Ok(Reply::ok(ctx.seen, body));
        }
        if let Some(rev) = plan.commit().await? {
            return Ok(Reply::ok(rev, finish_body(body, rev)));
        }
    }
    Ok(Reply::error(ctx.seen, err::SYSTEM_ERROR))
}

fn finish_stat(mut s: Stat, rev: i64) -> Stat {
    finish(&mut s, rev);
    s
}

fn finish_body(body: Response, rev: i64) -> Response {
    match body {
        Response::Create2 { path, stat } => Response::Create2 {
            path,
            stat: finish_stat(stat, rev),
        },
        Response::Stat(s) => Response::Stat(finish_stat(s, rev)),
        Response::Multi(results) => Response::Multi(
            results
                .into_iter()
                .map(|r| match r {
                    MultiResult::Create2 { path, stat } => MultiResult::Create2 {
                        path,
                        stat: finish_stat(stat, rev),
                    },
                    MultiResult::SetData { stat } => MultiResult::SetData {
                        stat: finish_stat(stat, rev),
                    },
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

async fn multi(ctx: &Ctx<'_>, ops: &[MultiOp]) -> Result<Reply, StoreError> {
    let caller = ctx.caller();
    for _ in 0..MAX_ATTEMPTS {
        let mut plan = Plan::new(ctx.store, ctx.seen, now_ms());
        let mut results = Vec::new();
        let mut failed = None;
        for (i, o) in ops.iter().enumerate() {
            let r = match o {
                MultiOp::Create { op: opcode, req } => {
                    plan.create(*opcode, req, &caller).await.map(|p| {
                        // upstream 3.8 answers create2 inside a multi like create (no Stat);
                        // createTTL and createContainer with a Stat
                        if *opcode == op::CREATE || *opcode == op::CREATE2 {
                            MultiResult::Create {
                                path: p.to_string(),
                            }
                        } else {
                            MultiResult::Create2 {
                                stat: plan.stat(&p).unwrap_or_default(),
                                path: p.to_string(),
                            }
                        }
                    })
                }
                MultiOp::Delete(d) => plan
                    .delete(&d.path, d.version, Some(&caller))
                    .await
                    .map(|_| MultiResult::Delete),
                MultiOp::SetData(s) => plan
                    .set_data(&s.path, s.data.clone(), s.version, &caller)
                    .await
                    .map(|p| MultiResult::SetData {
                        stat: plan.stat(&p).unwrap_or_default(),
                    }),
                MultiOp::Check { path, version } => plan
                    .check(path, *version, &caller)
                    .await
                    .map(|_| MultiResult::Check),
                MultiOp::GetData { .. } | MultiOp::GetChildren { .. } => {
                    Err(OpError::Zk(err::BAD_ARGUMENTS))
                }
            };
            match r {
                Ok(res) => results.push(res),
                Err(OpError::Store(e)) => return Err(e),
                Err(OpError::Zk(code)) => {
                    failed = Some((i, code));
                    break;
                }
            }
        }
        if let Some((at, code)) = failed {
            let results = (0..ops.len())
                .map(|i| MultiResult::Error {
                    err: if i < at {
                        err::OK
                    } else if i == at {
                        code
                    } else {
                        err::RUNTIME_INCONSISTENCY
                    },
                })
                .collect();
            return Ok(Reply::ok(
                plan.read_revision().max(ctx.seen),
                Response::Multi(results),
            ));
        }
        if !plan.writes_anything() {
            let rev = ctx.store.current_revision().await.unwrap_or(ctx.seen);
            return Ok(Reply::ok(rev.max(ctx.seen), Response::Multi(results)));
        }
        if let Some(rev) = plan.commit().await? {
            return Ok(Reply::ok(rev, finish_body(Response::Multi(results), rev)));
        }
    }
    Ok(Reply::error(ctx.seen, err::SYSTEM_ERROR))
}

async fn multi_read(ctx: &Ctx<'_>, ops: &[MultiOp]) -> Result<Reply, StoreError> {
    let mut results = Vec::new();
    let mut zxid = ctx.seen;
    for o in ops {
        let r = match o {
            MultiOp::GetData { path } => {
                let reply = get_data(ctx, path, false).await?;
                zxid = zxid.max(reply.zxid);
                match reply.body {
                    Response::GetData { data, stat } if reply.err == 0 => {
                        MultiResult::GetData { data, stat }
                    }
                    _ => MultiResult::Error { err: reply.err },
                }
            }
            MultiOp::GetChildren { path } => {
                let reply = get_children(ctx, path, false, false).await?;
                zxid = zxid.max(reply.zxid);
                match reply.body {
                    Response::GetChildren { children } if reply.err == 0 => {
                        MultiResult::GetChildren { children }
                    }
                    _ => MultiResult::Error { err: reply.err },
                }
            }
            _ => MultiResult::Error {
                err: err::BAD_ARGUMENTS,
            },
        };
        results.push(r);
    }
    Ok(Reply::ok(zxid, Response::Multi(results)))
}

/// setWatches/setWatches2: re-registers a reconnecting client's watches, firing at once those
/// whose node changed after `relative_zxid` (upstream's `DataTree.setWatches`).
async fn set_watches(ctx: &Ctx<'_>, sw: &SetWatches) -> Result<Reply, StoreError> {
    let mut events = Vec::new();
    let rel = sw.relative_zxid;
    for path in &sw.data_watches {
        let Ok(p) = ZnodePath::parse(path) else {
            continue;
        };
        match ctx.store.read(&p, ctx.seen).await?.0 {
            None => events.push((event::NODE_DELETED, path.clone())),
            Some(n) if n.stat(ctx.store.base()).mzxid > rel => {
                events.push((event::NODE_DATA_CHANGED, path.clone()))
            }
            Some(_) => ctx.watches.add(ctx.conn, WatchKind::Data, &p),
        }
    }
    for path in &sw.exist_watches {
        let Ok(p) = ZnodePath::parse(path) else {
            continue;
        };
        match ctx.store.read(&p, ctx.seen).await?.0 {
            Some(_) => events.push((event::NODE_CREATED, path.clone())),
            None => ctx.watches.add(ctx.conn, WatchKind::Data, &p),
        }
    }
    for path in &sw.child_watches {
        let Ok(p) = ZnodePath::parse(path) else {
            continue;
        };
        match ctx.store.read(&p, ctx.seen).await?.0 {
            None => events.push((event::NODE_DELETED, path.clone())),
            Some(n) if n.stat(ctx.store.base()).pzxid > rel => {
                events.push((event::NODE_CHILDREN_CHANGED, path.clone()))
            }
            Some(_) => ctx.watches.add(ctx.conn, WatchKind::Child, &p),
        }
    }
    for path in &sw.persistent_watches {
        if let Ok(p) = ZnodePath::parse(path) {
            ctx.watches.add(ctx.conn, WatchKind::Persistent, &p);
        }
    }
    for path in &sw.persistent_recursive_watches {
        if let Ok(p) = ZnodePath::parse(path) {
            ctx.watches.add(ctx.conn, WatchKind::Recursive, &p);
        }
    }
    let mut r = Reply::ok(ctx.seen, Response::Empty);
    r.events = events;
    Ok(r)
}
