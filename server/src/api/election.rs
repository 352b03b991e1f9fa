//! The etcd `Election` gRPC service (`v3election/election.go`, which runs the
//! `clientv3/concurrency` election recipe inside the server).
//!
//! A candidate's key is `<name>/<lease hex>`, attached to its lease; the candidate whose key was
//! created first leads, and the key's value is what the leader proclaims. Campaign creates the
//! key (or reuses the one its lease already has) and waits until every older key is gone;
//! Proclaim and Resign act on the key only while its create revision is still the one the
//! caller was elected with; Leader reads the oldest key; Observe streams the leader's value and
//! every change of it, across leader changes.
//!
//! Errors are answered as etcd 3.4 does: its server returns the recipe's Go errors, which gRPC
//! turns into `Unknown` with the error's text (see `errors::RecipeError`, `recipe_status`).
//!
//! A campaign runs detached from its request (`recipe::run_detached`): if the client goes away
//! before the campaign is won, the campaign resigns (upstream's `Resign` on a cancelled
//! context), so an abandoned campaign leaves no key behind. Observe runs on a task that ends,
//! with its watchers, when the client stops listening.

use std::pin::Pin;

use futures::Stream;
use synod_mvcc::KeyRange;
use synod_proto::etcdserverpb::{ResponseHeader, TxnRequest, TxnResponse};
use synod_proto::mvccpb::KeyValue;
use synod_proto::v3electionpb::election_server::Election;
use synod_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::errors::RecipeError;
use super::recipe::{
    create_revision_is, delete_op, first_created, get_op, participant_key, prefix_of,
    prefix_range_end, put_op, range_kvs, run_detached, Presence, Recipes,
};
use super::Limits;
use crate::node::Node;
use crate::watch::{Delivery, WatchHub, WatchSpec};

/// Leader responses queued for the transport before an Observe task waits for its client.
const OBSERVE_CAPACITY: usize = 16;

#[derive(Clone)]
pub struct ElectionService {
    recipes: Recipes,
}

impl ElectionService {
    pub fn new(node: Node, hub: WatchHub, limits: Limits) -> Self {
        ElectionService {
            recipes: Recipes::new(node, hub, limits),
        }
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let recipes = self.recipes.clone();
        run_detached(move |presence| campaign(recipes, req, presence))
            .await
            .map(Response::new)
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let leader = req.leader.ok_or(RecipeError::MissingLeaderKey)?;
        let lease = self.recipes.session_lease(leader.lease).await?;
        let resp = proclaim(&self.recipes, &leader.key, leader.rev, lease, req.value).await?;
        Ok(Response::new(ProclaimResponse {
            header: resp.header,
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let resp = self
            .recipes
            .get(&first_created(&prefix_of(&req.name)))
            .await?;
        let kv = resp.kvs.into_iter().next().ok_or(RecipeError::NoLeader)?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let (tx, rx) = mpsc::channel(OBSERVE_CAPACITY);
        let recipes = self.recipes.clone();
        tokio::spawn(async move {
            let prefix = prefix_of(&req.name);
            // Whatever observe is waiting for, it is dropped (watchers included) as soon as
            // the client stops listening.
            tokio::select! {
                _ = tx.closed() => {}
                _ = observe(&recipes, &prefix, &tx) => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, self.recipes.limits())?;
        let leader = req.leader.ok_or(RecipeError::MissingLeaderKey)?;
        // etcd opens a session on the given lease first, which for lease 0 grants a new one
        // (left unused); done here too so that the lease list looks the same.
        self.recipes.session_lease(leader.lease).await?;
        let resp = resign(&self.recipes, &leader.key, leader.rev).await?;
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

/// etcd's `Election.Campaign` on a session with `req.lease`.
async fn campaign(
    r: Recipes,
    req: CampaignRequest,
    mut presence: Presence,
) -> Result<CampaignResponse, Status> {
    let lease = r.session_lease(req.lease).await?;
    if presence.is_gone() {
        return Err(client_gone());
    }
    let prefix = prefix_of(&req.name);
    let key = participant_key(&prefix, lease);
    let resp = r
        .txn(TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, req.value.clone(), lease)],
            failure: vec![get_op(&key)],
        })
        .await?;
    let header = resp.header.unwrap_or_default();
    let mut rev = header.revision;
    if !resp.succeeded {
        // This lease campaigns already: keep its key, and update the value if it differs.
        let Some(own) = range_kvs(&resp, 0).first() else {
            return Err(Status::internal("campaign: existing key not returned"));
        };
        rev = own.create_revision;
        if own.value != req.value {
            if let Err(e) = proclaim(&r, &key, rev, lease, req.value.clone()).await {
                if let Err(re) = resign(&r, &key, rev).await {
                    tracing::debug!(status = %re, "resign after failed proclaim failed");
                }
                return Err(e);
            }
        }
    }
    let waited = tokio::select! {
        biased;
        _ = presence.gone() => None,
        w = r.wait_deletes(&prefix, rev.saturating_sub(1)) => Some(w),
    };
    match waited {
        Some(Ok(_)) => {}
        // Like upstream, a failed wait keeps the key; only a cancelled one resigns.
        Some(Err(e)) => return Err(e),
        None => {
            if let Err(e) = resign(&r, &key, rev).await {
                tracing::warn!(status = %e, "abandoned campaign could not resign");
            }
            return Err(client_gone());
        }
    }
    Ok(CampaignResponse {
        header: Some(header),
        leader: Some(LeaderKey {
            name: req.name,
            key,
            rev,
            lease,
        }),
    })
}

/// What a detached campaign answers once nobody listens any more.
fn client_gone() -> Status {
    Status::cancelled("context canceled")
}

/// etcd's `Election.Proclaim`: puts `value` on the leader key while it is still the one
/// created at `rev`.
async fn proclaim(
    r: &Recipes,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: Vec<u8>,
) -> Result<TxnResponse, Status> {
    let resp = r
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![put_op(key, value, lease)],
            failure: vec![],
        })
        .await?;
    if !resp.succeeded {
        return Err(RecipeError::NotLeader.into());
    }
    Ok(resp)
}

/// etcd's `Election.Resign`: deletes the leader key if it is still the one created at `rev`
/// (and succeeds either way).
async fn resign(r: &Recipes, key: &[u8], rev: i64) -> Result<TxnResponse, Status> {
    r.txn(TxnRequest {
        compare: vec![create_revision_is(key, rev)],
        success: vec![delete_op(key)],
        failure: vec![],
    })
    .await
}

/// etcd's `Election.observe`: sends the leader (waiting for one if there is none), then every
/// change of its key until it is deleted, then starts over. Returns when a read fails, a
/// watcher is compacted or lost, or the client stops listening; the stream then ends.
async fn observe(r: &Recipes, prefix: &[u8], tx: &mpsc::Sender<Result<LeaderResponse, Status>>) {
    loop {
        let Ok(resp) = r.get(&first_created(prefix)).await else {
            return;
        };
        let header = resp.header.unwrap_or_default();
        let (header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (header, kv),
            None => match first_put(r, prefix, header.revision).await {
                Some(found) => found,
                None => return,
            },
        };
        let key = kv.key.clone();
        let next_rev = header.revision + 1;
        let first = LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        };
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        if !follow(r, key, next_rev, tx).await {
            return;
        }
    }
}

/// Waits for the first put under `prefix` from revision `rev` on: the new leader, with a
/// header at the put's revision. `None` if the watcher is compacted or lost.
async fn first_put(r: &Recipes, prefix: &[u8], rev: i64) -> Option<(ResponseHeader, KeyValue)> {
    let mut sub = r.hub().subscribe(WatchSpec {
        range: KeyRange::from_request(prefix, &prefix_range_end(prefix)),
        start_rev: rev,
        no_put: false,
        no_delete: true,
        prev_kv: false,
        watch_id: 0,
    });
    loop {
        match sub.next().await? {
            Delivery::Events { events, .. } => {
                let put = events
                    .into_iter()
                    .find(|e| e.is_put())
                    .and_then(|e| e.kv().cloned());
                if let Some(kv) = put {
                    return Some((r.node().header(kv.mod_revision), kv));
                }
            }
            Delivery::Progress { .. } => {}
            Delivery::Compacted { .. } => return None,
        }
    }
}

/// Sends every put of the leader's `key` from revision `rev` on, until the key is deleted
/// (`true`) or the watcher ends or the client stops listening (`false`).
async fn follow(
    r: &Recipes,
    key: Vec<u8>,
    rev: i64,
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) -> bool {
    let mut sub = r.hub().subscribe(WatchSpec {
        range: KeyRange::Single(key),
        start_rev: rev,
        no_put: false,
        no_delete: false,
        prev_kv: false,
        watch_id: 0,
    });
    loop {
        match sub.next().await {
            Some(Delivery::Events {
                revision, events, ..
            }) => {
                let header = r.node().header(revision);
                for ev in events {
                    if ev.is_delete() {
                        return true;
                    }
                    let update = LeaderResponse {
                        header: Some(header),
                        kv: ev.kv().cloned(),
                    };
                    if tx.send(Ok(update)).await.is_err() {
                        return false;
                    }
                }
            }
            Some(Delivery::Progress { .. }) => {}
            Some(Delivery::Compacted { .. }) | None => return false,
        }
    }
}
