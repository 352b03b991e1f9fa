//! The etcd `Lock` gRPC service (`v3lock/lock.go`, which runs the `clientv3/concurrency`
//! mutex recipe inside the server).
//!
//! A waiter's key is `<name>/<lease hex>`, attached to its lease; the waiter whose key was
//! created first holds the lock. Lock creates the key (or reuses the one its lease already has)
//! and waits until every older key is gone; the answer carries the key, which is what Unlock
//! deletes (or the lease's expiry does).
//!
//! Errors are answered as etcd 3.4 does: its server returns the recipe's Go errors, which gRPC
//! turns into `Unknown` with the error's text (see `errors::recipe_status`).
//!
//! A lock runs detached from its request (`recipe::run_detached`): if the wait fails, or the
//! client goes away before the lock is acquired, the key is deleted (upstream's `Unlock` after
//! a failed wait), so an abandoned Lock leaves no key behind.

use synod_proto::etcdserverpb::TxnRequest;
use synod_proto::v3lockpb::lock_server::Lock;
use synod_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::recipe::{
    create_revision_is, first_created, get_op, is_owner, participant_key, prefix_of, put_op,
    range_kvs, range_op, run_detached, Presence, Recipes,
};
use super::Limits;
use crate::node::Node;
use crate::watch::WatchHub;

#[derive(Clone)]
pub struct LockService {
    recipes: Recipes,
}

impl LockService {
    pub fn new(node: Node, hub: WatchHub, limits: Limits) -> Self {
        LockService {
            recipes: Recipes::new(node, hub, limits),
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let recipes = self.recipes.clone();
        run_detached(move |presence| lock(recipes, req, presence))
            .await
            .map(Response::new)
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let resp = self.recipes.delete(req.key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}

/// etcd's `Mutex.Lock` on a session with `req.lease`.
async fn lock(
    r: Recipes,
    req: LockRequest,
    mut presence: Presence,
) -> Result<LockResponse, Status> {
    let lease = r.session_lease(req.lease).await?;
    if presence.is_gone() {
        return Err(client_gone());
    }
    let prefix = prefix_of(&req.name);
    let key = participant_key(&prefix, lease);
    // One txn creates the key (or finds it: the lease may hold or wait for the lock already)
    // and reads the current owner, so an uncontended lock costs one proposal.
    let resp = r
        .txn(TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![
                put_op(&key, Vec::new(), lease),
                range_op(first_created(&prefix)),
            ],
            failure: vec![get_op(&key), range_op(first_created(&prefix))],
        })
        .await?;
    let mut my_rev = resp.header.map_or(0, |h| h.revision);
    if !resp.succeeded {
        let Some(own) = range_kvs(&resp, 0).first() else {
            return Err(Status::internal("lock: existing key not returned"));
        };
        my_rev = own.create_revision;
    }
    if is_owner(range_kvs(&resp, 1).first(), my_rev) {
        return Ok(LockResponse {
            header: resp.header,
            key,
        });
    }
    let waited = tokio::select! {
        biased;
        _ = presence.gone() => None,
        w = r.wait_deletes(&prefix, my_rev.saturating_sub(1)) => Some(w),
    };
    match waited {
        Some(Ok(header)) => Ok(LockResponse {
            header: Some(header),
            key,
        }),
        // Upstream releases the key whenever the wait fails, cancelled or not.
        Some(Err(e)) => {
            unlock_quietly(&r, key).await;
            Err(e)
        }
        None => {
            unlock_quietly(&r, key).await;
            Err(client_gone())
        }
    }
}

async fn unlock_quietly(r: &Recipes, key: Vec<u8>) {
    if let Err(e) = r.delete(key).await {
        tracing::warn!(status = %e, "abandoned lock could not delete its key");
    }
}

/// What a detached lock answers once nobody listens any more.
fn client_gone() -> Status {
    Status::cancelled("context canceled")
}
