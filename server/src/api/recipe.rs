//! What the Election and Lock services share: etcd's `clientv3/concurrency` recipes run inside
//! the server, as etcd 3.4's `v3election` and `v3lock` servers run them over an in-process client.
//!
//! Both recipes keep one key per participant, `<name>/<lease id in hex>`, attached to the
//! participant's lease; the participant whose key has the smallest create revision holds the
//! lock (leads the election). Waiting for one's turn is etcd's `waitDeletes`: read the newest key
//! under the prefix created before one's own, wait for its deletion through the watch hub, and
//! repeat until there is none.
//!
//! Every write goes through `Node::propose` and every read is linearizable (`read_barrier`,
//! then `read`), like the client calls the recipes make upstream. Errors of those calls are
//! answered as etcd's in-process client hands them back ([`recipe_status`]).
//!
//! This module also owns how a campaign or lock outlives its caller: [`run_detached`] runs it
//! on its own task with a [`Presence`] that tells it whether the client is still there, so a
//! write is never abandoned halfway and an abandoned wait can clean up after itself.

use std::future::Future;

use synod_mvcc::KeyRange;
use synod_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use synod_proto::etcdserverpb::{
    request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};
use synod_proto::mvccpb::KeyValue;
use synod_proto::peerpb::{internal_request, internal_response};
use tokio::sync::oneshot;
use tonic::Status;

use super::errors::{mvcc_status, recipe_status, RecipeError};
use super::validate;
use super::Limits;
use crate::node::Node;
use crate::watch::{Delivery, WatchEvent, WatchHub, WatchSpec};

/// The TTL of the lease granted for a request that names none (etcd's `defaultSessionTTL`).
pub const SESSION_TTL: i64 = 60;

/// The node, the watch hub and the request limits: what a recipe runs on. Cheap to clone.
#[derive(Clone)]
pub struct Recipes {
    node: Node,
    hub: WatchHub,
    limits: Limits,
}

impl Recipes {
    pub fn new(node: Node, hub: WatchHub, limits: Limits) -> Self {
        Recipes { node, hub, limits }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn hub(&self) -> &WatchHub {
        &self.hub
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The lease a request's keys are attached to (etcd's `concurrency.NewSession` with
    /// `WithLease`): the given one as it is (an unknown lease fails later, at the put), or for
    /// lease 0 a new lease of [`SESSION_TTL`] seconds, which nobody keeps alive (etcd's servers
    /// orphan the session at once).
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let settings = self.node.settings();
        let min_ttl =
            crate::lease::min_lease_ttl(settings.heartbeat_interval, settings.election_timeout);
        let grant = LeaseGrantRequest {
            ttl: SESSION_TTL.max(min_ttl),
            id: 0,
        };
        match self
            .propose(internal_request::Request::LeaseGrant(grant))
            .await?
        {
            internal_response::Response::LeaseGrant(r) => Ok(r.id),
            _ => Err(unexpected()),
        }
    }

    /// A txn, checked and replicated as the KV service does it.
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        validate::check_txn(&txn, self.limits.max_txn_ops).map_err(|e| recipe_status(e.into()))?;
        match self.propose(internal_request::Request::Txn(txn)).await? {
            internal_response::Response::Txn(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    /// Deletes one key (etcd's `client.Delete(ctx, key)`).
    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let req = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        validate::check_delete(&req).map_err(|e| recipe_status(e.into()))?;
        match self
            .propose(internal_request::Request::DeleteRange(req))
            .await?
        {
            internal_response::Response::DeleteRange(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(r)
            }
            _ => Err(unexpected()),
        }
    }

    /// A linearizable range (etcd's `client.Get` without `WithSerializable`).
    pub async fn get(&self, req: &RangeRequest) -> Result<RangeResponse, Status> {
        validate::check_range(req).map_err(|e| recipe_status(e.into()))?;
        self.node
            .read_barrier()
            .await
            .map_err(|e| recipe_status(e.into()))?;
        let view = self.node.read().map_err(|e| recipe_status(e.into()))?;
        let mut resp = view.range(req).map_err(|e| recipe_status(mvcc_status(e)))?;
        resp.header = Some(self.node.header(view.current_revision()));
        Ok(resp)
    }

    /// etcd's `waitDeletes`: returns once no key under `prefix` has a create revision of at
    /// most `max_create_rev`, with the header of the read that found none. Each round waits for
    /// the deletion of the newest such key. Runs until then, or until the future is dropped
    /// (which drops its watcher).
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
    ) -> Result<ResponseHeader, Status> {
        let req = last_create_at_most(prefix, max_create_rev);
        loop {
            let resp = self.get(&req).await?;
            let header = resp.header.unwrap_or_default();
            let Some(newest) = resp.kvs.into_iter().next() else {
                return Ok(header);
            };
            self.wait_delete(newest.key, header.revision).await?;
        }
    }

    /// etcd's `waitDelete`: waits for a deletion of `key` at or after revision `rev`.
    async fn wait_delete(&self, key: Vec<u8>, rev: i64) -> Result<(), Status> {
        let mut sub = self.hub.subscribe(WatchSpec {
            range: KeyRange::Single(key),
            start_rev: rev,
            no_put: true,
            no_delete: false,
            prev_kv: false,
            watch_id: 0,
        });
        loop {
            match sub.next().await {
                Some(Delivery::Events { events, .. }) => {
                    if has_delete(&events) {
                        return Ok(());
                    }
                }
                Some(Delivery::Progress { .. }) => {}
                Some(Delivery::Compacted { .. }) => {
                    return Err(recipe_status(mvcc_status(synod_mvcc::MvccError::Compacted)));
                }
                None => return Err(RecipeError::LostWatcher.into()),
            }
        }
    }

    /// Replicates one request within `--max-request-bytes`, with the recipes' error codes.
    async fn propose(
        &self,
        req: internal_request::Request,
    ) -> Result<internal_response::Response, Status> {
        super::propose_within_limit(&self.node, &self.limits, req)
            .await
            .map_err(recipe_status)
    }
}

fn unexpected() -> Status {
    Status::internal("state machine answered with the wrong response kind")
}

/// Whether the client that asked is still waiting for the answer.
pub struct Presence {
    /// Nothing is ever sent on it: the client's side is only dropped. `None` once that was seen.
    alive: Option<oneshot::Receiver<()>>,
}

impl Presence {
    /// Resolves once the client has gone away (its request future was dropped).
    pub async fn gone(&mut self) {
        if let Some(alive) = self.alive.as_mut() {
            let _ = alive.await;
        }
        self.alive = None;
    }

    /// Whether the client has gone away already.
    pub fn is_gone(&mut self) -> bool {
        let Some(alive) = self.alive.as_mut() else {
            return true;
        };
        match alive.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => false,
            _ => {
                self.alive = None;
                true
            }
        }
    }
}

/// Runs `work` on a task of its own and waits for its answer.
///
/// tonic drops a handler's future when its client goes away; `work` is not dropped with it
/// (a write it started completes), it learns of the departure through its [`Presence`], and it
/// decides what to clean up. Its answer then goes nowhere.
pub async fn run_detached<T, F, Fut>(work: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(Presence) -> Fut,
    Fut: Future<Output = Result<T, Status>> + Send + 'static,
{
    let (alive_tx, alive_rx) = oneshot::channel::<()>();
    let (answer_tx, answer_rx) = oneshot::channel();
    let fut = work(Presence {
        alive: Some(alive_rx),
    });
    tokio::spawn(async move {
        let _ = answer_tx.send(fut.await);
    });
    let answer = answer_rx.await;
    drop(alive_tx);
    answer.unwrap_or_else(|_| Err(Status::internal("request task ended without an answer")))
}

/// The prefix under which an election's or lock's keys live: `<name>/`.
pub fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(name.len() + 1);
    p.extend_from_slice(name);
    p.push(b'/');
    p
}

/// A participant's key: the prefix followed by its lease id in lowercase hex, as Go's `%x`
/// formats an `int64` (a minus sign before the magnitude if negative).
pub fn participant_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(go_hex(lease).as_bytes());
    k
}

/// Go's `fmt.Sprintf("%x", v)` for an `int64`.
pub fn go_hex(v: i64) -> String {
    if v < 0 {
        format!("-{:x}", v.unsigned_abs())
    } else {
        format!("{v:x}")
    }
}

/// The end of the range of every key starting with `prefix` (clientv3's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and what follows it dropped, or `\0`
/// (every key from `prefix` on) if there is no such byte.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

fn top_of(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_range_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The oldest key under `prefix` (clientv3's `WithFirstCreate`): the owner or leader.
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    top_of(prefix, SortOrder::Ascend)
}

/// The newest key under `prefix` created at or before `max_create_rev` (`WithLastCreate`
/// with `WithMaxCreateRev`; 0 means no bound, as in etcd).
pub fn last_create_at_most(prefix: &[u8], max_create_rev: i64) -> RangeRequest {
    RangeRequest {
        max_create_revision: max_create_rev,
        ..top_of(prefix, SortOrder::Descend)
    }
}

/// `create_revision(key) == rev`.
pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub fn range_op(req: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

/// A get of exactly `key`.
pub fn get_op(key: &[u8]) -> RequestOp {
    range_op(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// The key-values of the `i`th answer of a txn if it is a range (empty otherwise).
pub fn range_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i) {
        Some(ResponseOp {
            response: Some(response_op::Response::ResponseRange(r)),
        }) => &r.kvs,
        _ => &[],
    }
}

/// Whether a participant whose key was created at `my_rev` holds the lock, given the first
/// created key under the prefix (`owner`, none if the prefix is empty).
pub fn is_owner(owner: Option<&KeyValue>, my_rev: i64) -> bool {
    owner.is_none_or(|kv| kv.create_revision == my_rev)
}

pub fn has_delete(events: &[WatchEvent]) -> bool {
    events.iter().any(WatchEvent::is_delete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::errors::RequestError;
    use synod_proto::mvccpb::{event::EventType, Event};

    #[test]
    fn hex_is_gos_signed_format() {
        assert_eq!(go_hex(0), "0");
        assert_eq!(go_hex(255), "ff");
        assert_eq!(go_hex(0x6c59_a1fd_36b0_a708), "6c59a1fd36b0a708");
        assert_eq!(go_hex(-1), "-1");
        assert_eq!(go_hex(-0x1f), "-1f");
        assert_eq!(go_hex(i64::MIN), "-8000000000000000");
        assert_eq!(go_hex(i64::MAX), "7fffffffffffffff");
    }

    #[test]
    fn keys_are_name_slash_lease() {
        let p = prefix_of(b"my-lock");
        assert_eq!(p, b"my-lock/");
        assert_eq!(
            participant_key(&p, 0x694d_77aa_9e31_5d04),
            b"my-lock/694d77aa9e315d04"
        );
        assert_eq!(participant_key(&prefix_of(b""), 1), b"/1");
        // Names are bytes, not text.
        assert_eq!(
            participant_key(&prefix_of(&[0xff, 0]), 10),
            [0xff, 0, b'/', b'a']
        );
    }

    #[test]
    fn prefix_range_end_matches_clientv3() {
        assert_eq!(prefix_range_end(b"a/"), b"a0");
        assert_eq!(prefix_range_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_range_end(&[0xff, 0xff]), [0]);
        assert_eq!(prefix_range_end(b""), [0]);
    }

    #[test]
    fn range_requests_pick_oldest_and_newest() {
        let first = first_created(b"e/");
        assert_eq!(first.key, b"e/");
        assert_eq!(first.range_end, b"e0");
        assert_eq!(first.limit, 1);
        assert_eq!(first.sort_target, SortTarget::Create as i32);
        assert_eq!(first.sort_order, SortOrder::Ascend as i32);
        assert_eq!(first.max_create_revision, 0);
        let last = last_create_at_most(b"e/", 41);
        assert_eq!(last.sort_order, SortOrder::Descend as i32);
        assert_eq!(last.max_create_revision, 41);
        assert_eq!(last.limit, 1);
        assert!(validate::check_range(&first).is_ok());
        assert!(validate::check_range(&last).is_ok());
    }

    fn kv(key: &[u8], create: i64) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: create,
            ..Default::default()
        }
    }

    #[test]
    fn owner_is_the_oldest_key() {
        assert!(is_owner(None, 7));
        assert!(is_owner(Some(&kv(b"l/1", 7)), 7));
        assert!(!is_owner(Some(&kv(b"l/1", 5)), 7));
    }

    #[test]
    fn range_kvs_reads_only_range_answers() {
        let resp = TxnResponse {
            responses: vec![
                ResponseOp {
                    response: Some(response_op::Response::ResponsePut(Default::default())),
                },
                ResponseOp {
                    response: Some(response_op::Response::ResponseRange(RangeResponse {
                        kvs: vec![kv(b"l/1", 3)],
                        ..Default::default()
                    })),
                },
            ],
            ..Default::default()
        };
        assert!(range_kvs(&resp, 0).is_empty());
        assert_eq!(range_kvs(&resp, 1)[0].create_revision, 3);
        assert!(range_kvs(&resp, 2).is_empty());
    }

    #[test]
    fn deletes_are_found_among_events() {
        let put = Event {
            r#type: EventType::Put as i32,
            ..Default::default()
        };
        let del = Event {
            r#type: EventType::Delete as i32,
            ..Default::default()
        };
        let (put, del) = (WatchEvent::from(put), WatchEvent::from(del));
        assert!(!has_delete(&[]));
        assert!(!has_delete(std::slice::from_ref(&put)));
        assert!(has_delete(&[put, del]));
    }

    #[test]
    fn txn_ops_pass_etcds_checks() {
        let txn = TxnRequest {
            compare: vec![create_revision_is(b"l/1", 0)],
            success: vec![
                put_op(b"l/1", Vec::new(), 1),
                range_op(first_created(b"l/")),
            ],
            failure: vec![get_op(b"l/1"), range_op(first_created(b"l/"))],
        };
        assert!(validate::check_txn(&txn, 128).is_ok());
        let empty = TxnRequest {
            compare: vec![create_revision_is(b"", 0)],
            success: vec![delete_op(b"")],
            failure: vec![],
        };
        assert_eq!(
            validate::check_txn(&empty, 128),
            Err(RequestError::EmptyKey)
        );
    }

    #[tokio::test]
    async fn detached_work_sees_its_client_leave() {
        let (seen_tx, seen_rx) = oneshot::channel();
        let call = run_detached(|mut presence| async move {
            assert!(!presence.is_gone());
            presence.gone().await;
            assert!(presence.is_gone());
            // Asking again, in either order, is fine.
            presence.gone().await;
            assert!(presence.is_gone());
            let _ = seen_tx.send(());
            Ok::<(), Status>(())
        });
        // The client gives up before an answer: the work goes on and learns of it.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), call).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), seen_rx)
            .await
            .expect("work noticed the departure")
            .unwrap();
    }

    #[tokio::test]
    async fn detached_work_answers() {
        let r = run_detached(|_| async { Ok::<_, Status>(5) }).await;
        assert_eq!(r.unwrap(), 5);
    }
}
