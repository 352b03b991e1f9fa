//! Lease API, and the Lock and Election services built on leases, through
//! the etcd-client crate, as a specification.
//!
//! Every test body is a `scenario` run twice (by the harness's `on_both`):
//! first against upstream etcd 3.4 (which proves the expectation is
//! upstream's behaviour), then against a Synod single member. Each run gets
//! its own fresh server, started and stopped by the test.
//!
//! Waiting: every wait is bounded ([`WAIT`]) and a hang fails with a message;
//! no test asserts how fast anything happens. Where a test shows that a call
//! *blocks* (a second lock, a second campaign), it checks that the call has
//! not returned after [`STILL_BLOCKED`], then releases what blocks it.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use compat_tests::{assert_grpc_error, current_revision, on_both, put, put_with_lease, Server};
use etcd_client::{
    Client, Error, GetOptions, LeaderKey, LeaseGrantOptions, LeaseKeepAliveResponse,
    LeaseKeepAliveStream, LeaseKeeper, LeaseTimeToLiveOptions, LockOptions, ProclaimOptions,
    PutOptions, ResignOptions,
};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// How long a blocked call is given to (wrongly) return.
const STILL_BLOCKED: Duration = Duration::from_secs(1);

/// The TTL etcd's lock and election services give the lease they grant
/// when the request names none (clientv3 concurrency's default session TTL).
const SESSION_TTL: i64 = 60;

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// Awaits `fut`, failing with `what` if it takes longer than [`WAIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {WAIT:?}"))
}

/// Fails if `task` finishes within [`STILL_BLOCKED`] (showing what it
/// returned): `what` must still be blocked.
async fn assert_blocked<T: Debug>(what: &str, task: &mut JoinHandle<T>) {
    if let Ok(done) = tokio::time::timeout(STILL_BLOCKED, &mut *task).await {
        panic!("{what}; but it returned: {done:?}");
    }
}

/// Polls `cond` every 100 ms until it holds; fails after `limit`.
async fn eventually(what: &str, limit: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still not the case after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one keep-alive request on `keeper` and returns its answer on
/// `stream`.
async fn keep_alive_once(
    keeper: &mut LeaseKeeper,
    stream: &mut LeaseKeepAliveStream,
) -> LeaseKeepAliveResponse {
    keeper.keep_alive().await.unwrap();
    within("keep-alive response", stream.message())
        .await
        .unwrap()
        .expect("a keep-alive response")
}

/// Locks `name` with `lease` in a task, through a clone of `c` (a contender
/// whose call may block); the task yields the key it was given.
fn spawn_lock(c: &Client, name: &'static str, lease: i64) -> JoinHandle<Result<String, Error>> {
    let mut c = c.clone();
    tokio::spawn(async move {
        c.lock(name, Some(LockOptions::new().with_lease(lease)))
            .await
            .map(|r| String::from_utf8_lossy(r.key()).into_owned())
    })
}

async fn grant(c: &mut Client, ttl: i64) -> i64 {
    let r = c.lease_grant(ttl, None).await.expect("lease grant");
    r.id()
}

/// Keys (as strings) under `prefix`.
async fn keys_under(c: &mut Client, prefix: &str) -> Vec<String> {
    c.get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("get prefix")
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

/// All lease ids the server lists, sorted.
async fn lease_ids(c: &mut Client) -> Vec<i64> {
    let mut ids: Vec<i64> = c
        .leases()
        .await
        .expect("leases")
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    ids.sort();
    ids
}

/// (id, ttl, granted_ttl, sorted attached keys) from TimeToLive with keys.
async fn time_to_live(c: &mut Client, id: i64) -> (i64, i64, i64, Vec<String>) {
    let r = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("lease time to live");
    let mut keys: Vec<String> = r
        .keys()
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    (r.id(), r.ttl(), r.granted_ttl(), keys)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Grant
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lease_grant_without_an_id_picks_a_positive_id_and_grants_the_ttl_without_a_new_revision() {
    async fn scenario(_: &Server, mut c: Client) {
        let before = current_revision(&mut c).await;
        let r = c.lease_grant(60, None).await.unwrap();
        assert!(
            r.id() > 0,
            "a server-chosen lease id is positive: {}",
            r.id()
        );
        assert_eq!(r.ttl(), 60);
        assert_eq!(r.error(), "");
        assert_eq!(
            r.header().unwrap().revision(),
            before,
            "granting a lease writes no key"
        );
        let r2 = c.lease_grant(60, None).await.unwrap();
        assert!(r2.id() > 0 && r2.id() != r.id(), "ids are unique");
        assert_eq!(current_revision(&mut c).await, before);

        let (id, ttl, granted, keys) = time_to_live(&mut c, r.id()).await;
        assert_eq!((id, granted, keys), (r.id(), 60, vec![]));
        assert!(ttl > 0 && ttl <= 60, "remaining TTL {ttl} within (0, 60]");
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn lease_grant_with_an_id_uses_it_and_a_duplicate_id_fails_with_lease_already_exists() {
    async fn scenario(_: &Server, mut c: Client) {
        let r = c
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await
            .unwrap();
        assert_eq!((r.id(), r.ttl()), (0x1234, 30));
        assert_grpc_error(
            c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(0x1234)))
                .await,
            "FailedPrecondition",
            "etcdserver: lease already exists",
        );
        let (_, _, granted, _) = time_to_live(&mut c, 0x1234).await;
        assert_eq!(granted, 30, "the refused grant changed nothing");

        // Once revoked, the id can be granted again.
        c.lease_revoke(0x1234).await.unwrap();
        let r = c
            .lease_grant(40, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await
            .unwrap();
        assert_eq!((r.id(), r.ttl()), (0x1234, 40));

        // Any positive id, up to the largest int64.
        let r = c
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(i64::MAX)))
            .await
            .unwrap();
        assert_eq!(r.id(), i64::MAX);
        assert_eq!(lease_ids(&mut c).await, [0x1234, i64::MAX]);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn lease_grant_over_the_maximum_ttl_fails_with_too_large_lease_ttl() {
    async fn scenario(_: &Server, mut c: Client) {
        const MAX_TTL: i64 = 9_000_000_000;
        assert_grpc_error(
            c.lease_grant(MAX_TTL + 1, None).await,
            "OutOfRange",
            "etcdserver: too large lease TTL",
        );
        assert_grpc_error(
            c.lease_grant(i64::MAX, None).await,
            "OutOfRange",
            "etcdserver: too large lease TTL",
        );
        assert_eq!(lease_ids(&mut c).await, Vec::<i64>::new());
        let r = c.lease_grant(MAX_TTL, None).await.unwrap();
        assert_eq!(r.ttl(), MAX_TTL, "the maximum itself is allowed");
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn lease_grant_raises_a_ttl_below_the_minimum_to_two_seconds() {
    // The minimum is ceil(1.5 * election timeout) = 2 s with the default
    // 1 s election timeout.
    async fn scenario(_: &Server, mut c: Client) {
        for (asked, granted) in [(-5, 2), (0, 2), (1, 2), (2, 2), (3, 3)] {
            let r = c.lease_grant(asked, None).await.unwrap();
            assert_eq!(r.ttl(), granted, "lease granted with TTL {asked}");
            let (_, _, granted_ttl, _) = time_to_live(&mut c, r.id()).await;
            assert_eq!(
                granted_ttl, granted,
                "granted_ttl of a lease asked with TTL {asked}"
            );
        }
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Revoke
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lease_revoke_deletes_the_attached_keys_in_one_revision_and_forgets_the_lease() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        let other = grant(&mut c, 60).await;
        put_with_lease(&mut c, "rv/a", "1", lease).await;
        put_with_lease(&mut c, "rv/b", "1", lease).await;
        put_with_lease(&mut c, "rv/other", "1", other).await;
        put(&mut c, "rv/plain", "1").await;
        let before = current_revision(&mut c).await;

        let r = c.lease_revoke(lease).await.unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            before + 1,
            "the deletions are one revision"
        );
        assert_eq!(keys_under(&mut c, "rv/").await, ["rv/other", "rv/plain"]);
        assert_eq!(lease_ids(&mut c).await, [other]);
        let (id, ttl, granted, keys) = time_to_live(&mut c, lease).await;
        assert_eq!((id, ttl, granted, keys), (lease, -1, 0, vec![]));

        assert_grpc_error(c.lease_revoke(lease).await, "NotFound", LEASE_NOT_FOUND);
        assert_grpc_error(c.lease_revoke(0x777).await, "NotFound", LEASE_NOT_FOUND);

        // A lease without keys: revoking writes nothing.
        let empty = grant(&mut c, 60).await;
        let now = current_revision(&mut c).await;
        let r = c.lease_revoke(empty).await.unwrap();
        assert_eq!(r.header().unwrap().revision(), now);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_a_revoked_or_unknown_lease_fails_with_lease_not_found() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        c.lease_revoke(lease).await.unwrap();
        assert_grpc_error(
            c.put("pl", "v", Some(PutOptions::new().with_lease(lease)))
                .await,
            "NotFound",
            LEASE_NOT_FOUND,
        );
        assert_grpc_error(
            c.put("pl", "v", Some(PutOptions::new().with_lease(-3)))
                .await,
            "NotFound",
            LEASE_NOT_FOUND,
        );
        assert!(keys_under(&mut c, "pl").await.is_empty());
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Keep-alive, TimeToLive, Leases
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lease_keep_alive_answers_each_request_with_the_granted_ttl_and_ttl_zero_once_the_lease_is_gone(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        let (mut keeper, mut stream) = c.lease_keep_alive(lease).await.unwrap();
        assert_eq!(keeper.id(), lease);
        for _ in 0..3 {
            let r = keep_alive_once(&mut keeper, &mut stream).await;
            assert_eq!(
                (r.id(), r.ttl()),
                (lease, 60),
                "the TTL is reset to the granted TTL"
            );
            assert!(r.header().unwrap().member_id() != 0);
        }

        c.lease_revoke(lease).await.unwrap();
        let r = keep_alive_once(&mut keeper, &mut stream).await;
        assert_eq!(
            (r.id(), r.ttl()),
            (lease, 0),
            "a revoked lease: TTL 0, the stream stays open"
        );
        let r = keep_alive_once(&mut keeper, &mut stream).await;
        assert_eq!((r.id(), r.ttl()), (lease, 0));

        // etcd-client turns the TTL 0 of a first answer into an error.
        match c.lease_keep_alive(0x4242).await {
            Err(Error::LeaseKeepAliveError(m)) => assert_eq!(m, "lease not found"),
            other => panic!("keep-alive of an unknown lease: {other:?}"),
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn lease_kept_alive_outlives_its_ttl_and_keeps_its_keys() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 2).await;
        put_with_lease(&mut c, "ka/k", "v", lease).await;
        let (mut keeper, mut stream) = c.lease_keep_alive(lease).await.unwrap();
        // Renew every 300 ms for twice the TTL.
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            let r = keep_alive_once(&mut keeper, &mut stream).await;
            assert_eq!((r.id(), r.ttl()), (lease, 2), "the lease is still alive");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(keys_under(&mut c, "ka/").await, ["ka/k"]);
        let (_, ttl, granted, keys) = time_to_live(&mut c, lease).await;
        assert!(ttl > 0, "remaining TTL {ttl}");
        assert_eq!((granted, keys), (2, strings(&["ka/k"])));
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn lease_time_to_live_lists_attached_keys_only_when_asked_and_answers_ttl_minus_one_for_unknown_leases(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 100).await;
        for k in ["tk/b", "tk/a", "tk/c"] {
            put_with_lease(&mut c, k, "v", lease).await;
        }
        // Re-put without the lease: detached. Re-put of another with the lease.
        put(&mut c, "tk/c", "v").await;
        put_with_lease(&mut c, "tk/a", "w", lease).await;
        c.delete("tk/b", None).await.unwrap();
        put_with_lease(&mut c, "tk/d", "v", lease).await;

        let (id, ttl, granted, keys) = time_to_live(&mut c, lease).await;
        assert_eq!((id, granted), (lease, 100));
        assert!(ttl > 0 && ttl <= 100, "remaining TTL {ttl}");
        assert_eq!(keys, ["tk/a", "tk/d"]);

        let r = c.lease_time_to_live(lease, None).await.unwrap();
        assert_eq!((r.id(), r.granted_ttl()), (lease, 100));
        assert!(r.keys().is_empty(), "keys only when asked for");

        let r = c
            .lease_time_to_live(0x5555, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        assert_eq!(
            (r.id(), r.ttl(), r.granted_ttl(), r.keys().len()),
            (0x5555, -1, 0, 0),
            "an unknown lease is no error: TTL -1"
        );
        assert!(r.header().unwrap().member_id() != 0);
        assert_eq!(
            r.header().unwrap().revision(),
            current_revision(&mut c).await
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn leases_lists_every_live_lease() {
    async fn scenario(_: &Server, mut c: Client) {
        let r = c.leases().await.unwrap();
        assert!(r.leases().is_empty(), "a fresh server has no lease");
        assert_eq!(
            r.header().unwrap().revision(),
            current_revision(&mut c).await
        );
        let a = grant(&mut c, 60).await;
        let b = grant(&mut c, 600).await;
        c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(5)))
            .await
            .unwrap();
        let mut expected = vec![a, b, 5];
        expected.sort();
        assert_eq!(lease_ids(&mut c).await, expected);
        c.lease_revoke(b).await.unwrap();
        expected.retain(|&id| id != b);
        assert_eq!(lease_ids(&mut c).await, expected);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn an_expired_lease_deletes_its_keys_and_is_gone() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 2).await;
        let keep = grant(&mut c, 600).await;
        put_with_lease(&mut c, "ex/a", "v", lease).await;
        put_with_lease(&mut c, "ex/b", "v", lease).await;
        put_with_lease(&mut c, "ex/kept", "v", keep).await;
        let before = current_revision(&mut c).await;

        eventually(
            "the keys of the 2 s lease are deleted",
            Duration::from_secs(20),
            async || keys_under(&mut c, "ex/").await == ["ex/kept"],
        )
        .await;
        assert_eq!(
            current_revision(&mut c).await,
            before + 1,
            "both keys were deleted in one revision"
        );
        let (id, ttl, granted, keys) = time_to_live(&mut c, lease).await;
        assert_eq!((id, ttl, granted, keys), (lease, -1, 0, vec![]));
        assert_eq!(lease_ids(&mut c).await, [keep]);
        assert_grpc_error(c.lease_revoke(lease).await, "NotFound", LEASE_NOT_FOUND);
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lock_returns_a_key_named_after_the_lock_and_the_lease_held_until_unlock() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        let r = c
            .lock("mylock", Some(LockOptions::new().with_lease(lease)))
            .await
            .unwrap();
        let key = format!("mylock/{lease:x}");
        assert_eq!(String::from_utf8_lossy(r.key()), key);
        let kv = c.get(key.as_str(), None).await.unwrap().kvs()[0].clone();
        assert_eq!(
            (kv.value(), kv.lease(), kv.version()),
            (&b""[..], lease, 1),
            "the lock key: empty value, the lease"
        );
        assert_eq!(
            r.header().unwrap().revision(),
            kv.create_revision(),
            "the lock's header carries the revision that created the key"
        );
        let (_, _, _, keys) = time_to_live(&mut c, lease).await;
        assert_eq!(keys, [key.as_str()]);

        // Locking again with the same lease is the same acquisition.
        let again = within(
            "re-lock with the same lease",
            c.lock("mylock", Some(LockOptions::new().with_lease(lease))),
        )
        .await
        .unwrap();
        assert_eq!(String::from_utf8_lossy(again.key()), key);
        assert_eq!(keys_under(&mut c, "mylock").await, [key.as_str()]);

        let u = c.unlock(key.as_str()).await.unwrap();
        assert_eq!(
            u.header().unwrap().revision(),
            current_revision(&mut c).await
        );
        assert!(keys_under(&mut c, "mylock").await.is_empty());
        // Unlocking a key that is not held is no error.
        c.unlock(key.as_str()).await.unwrap();
        c.unlock("never/locked").await.unwrap();
        assert_eq!(lease_ids(&mut c).await, [lease], "unlock keeps the lease");
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn lock_without_a_lease_is_held_with_a_new_60_second_lease() {
    async fn scenario(_: &Server, mut c: Client) {
        let r = c.lock("auto", None).await.unwrap();
        let key = String::from_utf8_lossy(r.key()).into_owned();
        let hex = key
            .strip_prefix("auto/")
            .unwrap_or_else(|| panic!("lock key {key:?} is not under auto/"));
        let lease = i64::from_str_radix(hex, 16)
            .unwrap_or_else(|e| panic!("lock key {key:?} does not end in a hex lease id: {e}"));
        assert_eq!(lease_ids(&mut c).await, [lease]);
        let (_, ttl, granted, keys) = time_to_live(&mut c, lease).await;
        assert_eq!((granted, keys), (SESSION_TTL, vec![key.clone()]));
        assert!(ttl > 0 && ttl <= SESSION_TTL, "remaining TTL {ttl}");
        c.unlock(key.as_str()).await.unwrap();
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_second_lock_on_the_same_name_waits_until_the_holder_unlocks() {
    async fn scenario(_: &Server, mut c: Client) {
        let l1 = grant(&mut c, 60).await;
        let l2 = grant(&mut c, 60).await;
        let first = c
            .lock("shared", Some(LockOptions::new().with_lease(l1)))
            .await
            .unwrap();
        let first_key = String::from_utf8_lossy(first.key()).into_owned();

        let mut waiter = spawn_lock(&c, "shared", l2);
        assert_blocked(
            "the second lock must not return while the first is held",
            &mut waiter,
        )
        .await;
        // The waiter's key is queued behind the holder's.
        let queued = [first_key.clone(), format!("shared/{l2:x}")];
        eventually("the waiter's key appears", WAIT, async || {
            keys_under(&mut c, "shared/").await == queued
        })
        .await;
        // A lock on another name is not blocked.
        within(
            "lock on another name",
            c.lock("unrelated", Some(LockOptions::new().with_lease(l1))),
        )
        .await
        .unwrap();

        c.unlock(first_key.as_str()).await.unwrap();
        let second = within("the second lock after unlock", &mut waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second, format!("shared/{l2:x}"));
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_waiting_lock_is_granted_when_the_holders_lease_is_revoked() {
    async fn scenario(_: &Server, mut c: Client) {
        let l1 = grant(&mut c, 60).await;
        let l2 = grant(&mut c, 60).await;
        c.lock("rl", Some(LockOptions::new().with_lease(l1)))
            .await
            .unwrap();
        let mut waiter = spawn_lock(&c, "rl", l2);
        assert_blocked(
            "the second lock must not return while the first is held",
            &mut waiter,
        )
        .await;
        c.lease_revoke(l1).await.unwrap();
        let key = within("the lock after the holder's lease is revoked", &mut waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key, format!("rl/{l2:x}"));
    }
    on_both(scenario).await;
}

/// etcd's lock service passes on the KV error as a plain error: the gRPC code
/// becomes Unknown, the message stays.
#[tokio::test]
async fn lock_with_an_unknown_lease_fails_with_code_unknown_and_the_lease_not_found_message() {
    async fn scenario(_: &Server, mut c: Client) {
        let r = c
            .lock("nl", Some(LockOptions::new().with_lease(0x9999)))
            .await;
        assert_grpc_error(r, "Unknown", LEASE_NOT_FOUND);
        assert!(keys_under(&mut c, "nl").await.is_empty());
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Election
// ---------------------------------------------------------------------------

fn leader_key(name: &str, key: &str, rev: i64, lease: i64) -> LeaderKey {
    LeaderKey::new()
        .with_name(name)
        .with_key(key)
        .with_rev(rev)
        .with_lease(lease)
}

/// (name, key, rev, lease) of a leader key.
fn leader_fields(l: &LeaderKey) -> (String, String, i64, i64) {
    (
        String::from_utf8_lossy(l.name()).into_owned(),
        String::from_utf8_lossy(l.key()).into_owned(),
        l.rev(),
        l.lease(),
    )
}

/// (key, value) of the current leader of `name`.
async fn leader_of(c: &Client, name: &str) -> (String, String) {
    let r = c.election_client().leader(name).await.expect("leader");
    let kv = r.kv().expect("a leader kv");
    (
        String::from_utf8_lossy(kv.key()).into_owned(),
        String::from_utf8_lossy(kv.value()).into_owned(),
    )
}

#[tokio::test]
async fn campaign_makes_the_first_candidate_leader_under_name_slash_lease_and_proclaim_changes_its_value(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        let mut e = c.election_client();
        let r = e.campaign("job", "v1", lease).await.unwrap();
        let key = format!("job/{lease:x}");
        let leader = r.leader().expect("a leader key").clone();
        let kv = c.get(key.as_str(), None).await.unwrap().kvs()[0].clone();
        assert_eq!(
            leader_fields(&leader),
            ("job".to_string(), key.clone(), kv.create_revision(), lease)
        );
        assert_eq!(
            r.header().unwrap().revision(),
            kv.create_revision(),
            "the campaign's header carries the revision of the candidate's key"
        );
        assert_eq!((kv.value(), kv.lease()), (&b"v1"[..], lease));
        assert_eq!(leader_of(&c, "job").await, (key.clone(), "v1".to_string()));

        let p = e
            .proclaim(
                "v2",
                Some(ProclaimOptions::new().with_leader(leader.clone())),
            )
            .await
            .unwrap();
        assert_eq!(
            p.header().unwrap().revision(),
            current_revision(&mut c).await
        );
        assert_eq!(leader_of(&c, "job").await, (key.clone(), "v2".to_string()));
        let kv = c.get(key.as_str(), None).await.unwrap().kvs()[0].clone();
        assert_eq!((kv.version(), kv.lease()), (2, lease));

        // Campaigning again with the same lease keeps the key and proclaims the new value.
        let r = within("a repeated campaign", e.campaign("job", "v3", lease))
            .await
            .unwrap();
        assert_eq!(leader_fields(r.leader().unwrap()), leader_fields(&leader));
        assert_eq!(leader_of(&c, "job").await, (key.clone(), "v3".to_string()));

        let r = e
            .resign(Some(ResignOptions::new().with_leader(leader)))
            .await
            .unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            current_revision(&mut c).await
        );
        assert!(keys_under(&mut c, "job/").await.is_empty());
        assert_grpc_error(e.leader("job").await, "Unknown", "election: no leader");
        assert_eq!(
            lease_ids(&mut c).await,
            [lease],
            "resigning keeps the lease"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_second_candidate_becomes_leader_only_after_the_first_resigns() {
    async fn scenario(_: &Server, mut c: Client) {
        let l1 = grant(&mut c, 60).await;
        let l2 = grant(&mut c, 60).await;
        let mut e = c.election_client();
        let first = e.campaign("el", "one", l1).await.unwrap();
        let first_leader = first.leader().unwrap().clone();

        let mut second = {
            let mut e = c.election_client();
            tokio::spawn(async move { e.campaign("el", "two", l2).await })
        };
        assert_blocked(
            "the second campaign must not return while the first candidate leads",
            &mut second,
        )
        .await;
        assert_eq!(
            leader_of(&c, "el").await,
            (format!("el/{l1:x}"), "one".to_string()),
            "the first candidate still leads; the second waits with its own key"
        );
        let queued = [format!("el/{l1:x}"), format!("el/{l2:x}")];
        eventually("the second candidate's key appears", WAIT, async || {
            keys_under(&mut c, "el/").await == queued
        })
        .await;

        e.resign(Some(ResignOptions::new().with_leader(first_leader)))
            .await
            .unwrap();
        let r = within("the second campaign after the first resigned", &mut second)
            .await
            .unwrap()
            .unwrap();
        let (name, key, rev, lease) = leader_fields(r.leader().unwrap());
        assert_eq!(
            (name, key.clone(), lease),
            ("el".to_string(), format!("el/{l2:x}"), l2)
        );
        let kv = c.get(key.as_str(), None).await.unwrap().kvs()[0].clone();
        assert_eq!(
            rev,
            kv.create_revision(),
            "rev is the creation revision of the key"
        );
        assert_eq!(leader_of(&c, "el").await, (key, "two".to_string()));
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_waiting_candidate_becomes_leader_when_the_leaders_lease_is_revoked() {
    async fn scenario(_: &Server, mut c: Client) {
        let l1 = grant(&mut c, 60).await;
        let l2 = grant(&mut c, 60).await;
        let mut e = c.election_client();
        e.campaign("rv", "one", l1).await.unwrap();
        let mut second = {
            let mut e = c.election_client();
            tokio::spawn(async move { e.campaign("rv", "two", l2).await })
        };
        assert_blocked(
            "the second campaign must not return while the first candidate leads",
            &mut second,
        )
        .await;
        c.lease_revoke(l1).await.unwrap();
        let r = within(
            "the campaign after the leader's lease is revoked",
            &mut second,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(r.leader().unwrap().key()),
            format!("rv/{l2:x}")
        );
        assert_eq!(
            leader_of(&c, "rv").await,
            (format!("rv/{l2:x}"), "two".to_string())
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn observe_streams_the_current_leader_then_every_proclaimed_value_and_the_next_leader() {
    async fn scenario(_: &Server, mut c: Client) {
        let l1 = grant(&mut c, 60).await;
        let l2 = grant(&mut c, 60).await;
        let mut e = c.election_client();
        let leader = e
            .campaign("ob", "a", l1)
            .await
            .unwrap()
            .leader()
            .unwrap()
            .clone();

        let mut obs = e.observe("ob").await.unwrap();
        let mut next = async || {
            let r = within("an observed leader", obs.message())
                .await
                .expect("observe stream")
                .expect("an observe response");
            let kv = r.kv().expect("a leader kv");
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        };
        let k1 = format!("ob/{l1:x}");
        assert_eq!(
            next().await,
            (k1.clone(), "a".to_string()),
            "the current leader first"
        );

        e.proclaim(
            "b",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .unwrap();
        assert_eq!(next().await, (k1.clone(), "b".to_string()));
        e.proclaim(
            "c",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .unwrap();
        assert_eq!(next().await, (k1.clone(), "c".to_string()));

        e.resign(Some(ResignOptions::new().with_leader(leader)))
            .await
            .unwrap();
        e.campaign("ob", "z", l2).await.unwrap();
        assert_eq!(
            next().await,
            (format!("ob/{l2:x}"), "z".to_string()),
            "after a resignation, the next leader"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn observe_on_an_election_without_leader_waits_for_the_first_one() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        // etcd sends nothing, not even the response headers, before there is a
        // leader: the observe call itself may block, so it runs in a task.
        let mut observer = {
            let mut e = c.election_client();
            tokio::spawn(async move {
                let mut obs = e.observe("empty").await?;
                obs.message().await
            })
        };
        assert_blocked("nothing to observe before a leader exists", &mut observer).await;
        c.election_client()
            .campaign("empty", "first", lease)
            .await
            .unwrap();
        let r = within("the first leader", &mut observer)
            .await
            .unwrap()
            .expect("observe stream")
            .expect("an observe response");
        let kv = r.kv().unwrap();
        assert_eq!(
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned()
            ),
            (format!("empty/{lease:x}"), "first".to_string())
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn election_fails_not_leader_for_a_wrong_leader_key_no_leader_for_an_empty_election_and_on_a_missing_leader_key_but_resign_with_a_wrong_key_is_a_no_op(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = grant(&mut c, 60).await;
        let mut e = c.election_client();
        assert_grpc_error(e.leader("nobody").await, "Unknown", "election: no leader");

        let real = e
            .campaign("er", "v", lease)
            .await
            .unwrap()
            .leader()
            .unwrap()
            .clone();
        let real_key = format!("er/{lease:x}");

        // A key that is not the leader's, or the right key with the wrong revision.
        for wrong in [
            leader_key("er", "er/bogus", real.rev(), lease),
            leader_key("er", &real_key, real.rev() + 100, lease),
        ] {
            assert_grpc_error(
                e.proclaim(
                    "hijack",
                    Some(ProclaimOptions::new().with_leader(wrong.clone())),
                )
                .await,
                "Unknown",
                "election: not leader",
            );
            // Resigning with a wrong key does nothing and is no error.
            e.resign(Some(ResignOptions::new().with_leader(wrong)))
                .await
                .unwrap();
        }
        assert_eq!(
            leader_of(&c, "er").await,
            (real_key.clone(), "v".to_string())
        );

        // No leader key at all.
        const MISSING: &str = "\"leader\" field must be provided";
        assert_grpc_error(e.proclaim("x", None).await, "Unknown", MISSING);
        assert_grpc_error(e.resign(None).await, "Unknown", MISSING);
        assert_eq!(leader_of(&c, "er").await, (real_key, "v".to_string()));
    }
    on_both(scenario).await;
}
