//! Failover of a 3-member Synod cluster: `kill -9` of the leader while clients hold leases, a
//! lock and watches, and a writer keeps putting keys. After a new leader is elected:
//!
//! * a lease kept alive through a surviving member stays alive, and its keep-alives keep
//!   being answered;
//! * a lease without keep-alives keeps counting down: its TimeToLive shows the REMAINING TTL
//!   (60 s granted ~10 s before the kill shows ~50 s, not a fresh 60 s + election timeout as a
//!   new etcd 3.4 leader without lease checkpoints would report);
//! * a lock held with the kept-alive lease is still held: its key exists with that lease, a
//!   second contender does not get it until it is unlocked, then does;
//! * a watch on a surviving member sees every acknowledged put exactly once, in revision order,
//!   and exactly what a fresh watch from revision 1 replays;
//! * a watch on the killed leader itself, resumed by the client on another member from its last
//!   revision + 1, gives a combined stream without gap or duplicate.
//!
//! Every wait is bounded; figures (time to a new leader, events seen) are printed, never
//! asserted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compat_tests::{client_for, Cluster, Flavor};
use etcd_client::{
    Client, ConnectOptions, GetOptions, LeaseTimeToLiveOptions, LockOptions, WatchOptions,
    WatchStream,
};

/// Bound on electing a new leader after the kill.
const ELECTION_LIMIT: Duration = Duration::from_secs(20);
/// Bound on any single request of the test's own checks.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Bound on a watch delivering events already written.
const WATCH_LIMIT: Duration = Duration::from_secs(15);
/// Puts per writer at most: the write load is bounded in count as well as in time.
const MAX_PUTS: usize = 1_000;
/// Pause between two puts of the writer.
const PUT_PACE: Duration = Duration::from_millis(20);
/// Lease (b): granted TTL, and how long before the kill it is granted.
const LEASE_B_TTL: i64 = 60;
const LEASE_B_AGE_AT_KILL: Duration = Duration::from_secs(10);
/// Lease (a): short, so that it would expire during the failover without working keep-alives.
const LEASE_A_TTL: i64 = 5;
const KEEPALIVE_EVERY: Duration = Duration::from_secs(1);
/// How long a second lock contender must stay blocked while the lock is held.
const CONTENDER_BLOCKED_FOR: Duration = Duration::from_secs(3);

/// A client whose requests may wait up to 60 s (a lock call blocks until the lock is free).
async fn patient_client(endpoints: &[String]) -> Client {
    let urls: Vec<String> = endpoints.iter().map(|e| format!("http://{e}")).collect();
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60));
    Client::connect(&urls, Some(opts))
        .await
        .unwrap_or_else(|e| panic!("connect to {urls:?}: {e}"))
}

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(REQUEST_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {REQUEST_LIMIT:?}"))
}

/// Polls until some member reports itself leader; panics after `limit`.
fn wait_for_leader(cluster: &Cluster, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(i) = cluster.leader_index() {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no member reported itself leader within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every endpoint but the `i`-th.
fn all_but(endpoints: &[String], i: usize) -> Vec<String> {
    endpoints
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, e)| e.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Written {
    /// (key, revision) of every acknowledged put.
    acked: Vec<(String, i64)>,
    /// When each of them was acknowledged.
    acked_at: Vec<Instant>,
    failed: usize,
}

/// Puts `<prefix><n>` one after another until `stop` (at most [`MAX_PUTS`]), counting
/// acknowledged puts in `acked_count`; a failed put (e.g. during the election) is counted and
/// the writer goes on with the next key.
async fn write_keys(
    mut c: Client,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked_count: Arc<AtomicUsize>,
) -> Written {
    let mut out = Written::default();
    for n in 0..MAX_PUTS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("{prefix}{n:05}");
        match tokio::time::timeout(
            Duration::from_secs(5),
            c.put(key.clone(), format!("v{n}"), None),
        )
        .await
        {
            Ok(Ok(r)) => {
                out.acked
                    .push((key, r.header().map(|h| h.revision()).unwrap_or(0)));
                out.acked_at.push(Instant::now());
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                out.failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(PUT_PACE).await;
    }
    out
}

// ---------------------------------------------------------------------------
// Watch collection
// ---------------------------------------------------------------------------

/// One received event: (key, value, create revision, mod revision, version, is put).
type Ev = (String, String, i64, i64, i64, bool);

#[derive(Default)]
struct Seen {
    events: Vec<Ev>,
    /// Why the stream ended (error, end, cancel), if it did.
    end: Option<String>,
}

impl Seen {
    fn last_rev(&self) -> i64 {
        self.events.last().map(|e| e.3).unwrap_or(0)
    }
}

/// Opens a watch on `prefix` from `start_rev` and collects its events in the background.
async fn spawn_watch(c: &Client, prefix: &str, start_rev: i64) -> Arc<Mutex<Seen>> {
    let mut wc = c.watch_client();
    let mut opts = WatchOptions::new().with_prefix();
    if start_rev != 0 {
        opts = opts.with_start_revision(start_rev);
    }
    let mut stream: WatchStream = bounded("watch", wc.watch(prefix, Some(opts)))
        .await
        .unwrap_or_else(|e| panic!("watch {prefix} from {start_rev}: {e}"));
    let first = bounded("created response", stream.message())
        .await
        .unwrap_or_else(|e| panic!("watch {prefix}: {e}"))
        .expect("watch stream ended before its created response");
    assert!(
        first.created() && !first.canceled(),
        "watch {prefix} from {start_rev}: expected a created response, got {first:?}"
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    tokio::spawn(async move {
        loop {
            let next = stream.message().await;
            let mut s = sink.lock().unwrap();
            match next {
                Ok(Some(r)) => {
                    for e in r.events() {
                        let kv = e.kv().expect("event without kv");
                        s.events.push((
                            String::from_utf8_lossy(kv.key()).into_owned(),
                            String::from_utf8_lossy(kv.value()).into_owned(),
                            kv.create_revision(),
                            kv.mod_revision(),
                            kv.version(),
                            e.event_type() == etcd_client::EventType::Put,
                        ));
                    }
                    if r.canceled() {
                        s.end = Some(format!(
                            "canceled (compact_revision={}, reason {:?})",
                            r.compact_revision(),
                            r.cancel_reason()
                        ));
                        break;
                    }
                }
                Ok(None) => {
                    s.end = Some("stream ended".into());
                    break;
                }
                Err(e) => {
                    s.end = Some(format!("stream failed: {e}"));
                    break;
                }
            }
        }
    });
    seen
}

/// Waits until `seen` holds an event of revision `rev` or later; panics on timeout or if the
/// stream ends first.
async fn wait_for_rev(seen: &Arc<Mutex<Seen>>, rev: i64, who: &str) {
    let deadline = Instant::now() + WATCH_LIMIT;
    loop {
        {
            let s = seen.lock().unwrap();
            if s.last_rev() >= rev {
                return;
            }
            if let Some(end) = &s.end {
                panic!(
                    "{who}: the watch ended ({end}) at revision {} before reaching {rev}",
                    s.last_rev()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{who}: the watch reached only revision {} of {rev} within {WATCH_LIMIT:?}",
                    s.last_rev()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `seen` holds at least `n` events; panics after [`WATCH_LIMIT`].
async fn wait_for_events(seen: &Arc<Mutex<Seen>>, n: usize, who: &str) {
    let deadline = Instant::now() + WATCH_LIMIT;
    while seen.lock().unwrap().events.len() < n {
        assert!(
            Instant::now() < deadline,
            "{who} saw only {} events within {WATCH_LIMIT:?}",
            seen.lock().unwrap().events.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The highest mod revision under `prefix` (keys are only ever put, never deleted).
async fn max_rev_under(c: &mut Client, prefix: &str) -> i64 {
    let r = bounded(
        "range",
        c.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    .expect("range over the watched prefix");
    r.kvs()
        .iter()
        .map(|kv| kv.mod_revision())
        .max()
        .unwrap_or(0)
}

/// Every acknowledged put is in `events` exactly once; events are in strictly increasing
/// revision order; and `events` is exactly what a fresh watch from revision 1 replays.
async fn assert_complete_stream(
    c: &Client,
    prefix: &str,
    events: &[Ev],
    written: &Written,
    who: &str,
) {
    for w in events.windows(2) {
        assert!(
            w[0].3 < w[1].3,
            "{who}: events out of revision order or duplicated: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let mut count: BTreeMap<(&str, i64), usize> = BTreeMap::new();
    for e in events {
        *count.entry((e.0.as_str(), e.3)).or_default() += 1;
    }
    let missing: Vec<&(String, i64)> = written
        .acked
        .iter()
        .filter(|(k, r)| count.get(&(k.as_str(), *r)).copied().unwrap_or(0) != 1)
        .collect();
    assert!(
        missing.is_empty(),
        "{who}: {} of {} acknowledged puts were not seen exactly once, e.g. {:?}",
        missing.len(),
        written.acked.len(),
        &missing[..missing.len().min(5)]
    );
    let last = events.last().map(|e| e.3).unwrap_or(0);
    let replay = spawn_watch(c, prefix, 1).await;
    wait_for_rev(&replay, last, &format!("{who} (replay from revision 1)")).await;
    let replayed = replay.lock().unwrap().events.clone();
    assert_eq!(
        replayed.len(),
        events.len(),
        "{who}: a fresh watch from revision 1 replays {} events, the live watch saw {}",
        replayed.len(),
        events.len()
    );
    if let Some(i) = (0..events.len()).find(|&i| replayed[i] != events[i]) {
        panic!(
            "{who}: event {i} differs from the replay: live {:?}, replay {:?}",
            events[i], replayed[i]
        );
    }
}

// ---------------------------------------------------------------------------
// Keep-alives
// ---------------------------------------------------------------------------

#[derive(Default)]
struct KeepAlives {
    /// (when, ttl) of every keep-alive answer.
    answers: Vec<(Instant, i64)>,
    /// Failures (stream errors, timeouts), with when.
    errors: Vec<(Instant, String)>,
}

/// Records a keep-alive failure, with when.
fn log_failure(log: &Mutex<KeepAlives>, what: impl Into<String>) {
    log.lock()
        .unwrap()
        .errors
        .push((Instant::now(), what.into()));
}

/// Keeps lease `id` alive through `c` every [`KEEPALIVE_EVERY`] until `stop`, reopening the
/// keep-alive stream after a failure as a client library does.
async fn keep_alive_loop(c: Client, id: i64, stop: Arc<AtomicBool>, log: Arc<Mutex<KeepAlives>>) {
    let mut lc = c.lease_client();
    while !stop.load(Ordering::Relaxed) {
        let opened = tokio::time::timeout(Duration::from_secs(5), lc.keep_alive(id)).await;
        let (mut keeper, mut stream) = match opened {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                log_failure(&log, format!("open: {e}"));
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Err(_) => {
                log_failure(&log, "open: timeout");
                continue;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(KEEPALIVE_EVERY).await;
            if let Err(e) = keeper.keep_alive().await {
                log_failure(&log, format!("send: {e}"));
                break;
            }
            match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
                Ok(Ok(Some(r))) => log.lock().unwrap().answers.push((Instant::now(), r.ttl())),
                Ok(Ok(None)) => {
                    log_failure(&log, "stream ended");
                    break;
                }
                Ok(Err(e)) => {
                    log_failure(&log, format!("recv: {e}"));
                    break;
                }
                Err(_) => {
                    log_failure(&log, "recv: timeout");
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn leases_lock_and_watch_on_survivors_come_through_kill_9_of_the_leader_intact() {
    let mut cluster = Cluster::start(Flavor::Synod, 3);
    let old_leader = wait_for_leader(&cluster, ELECTION_LIMIT);
    let endpoints = cluster.endpoints();
    let survivors = all_but(&endpoints, old_leader);
    // Keep-alives and the lock go through one surviving member, the watch through the other.
    let via_follower = vec![survivors[0].clone()];
    let watch_member = vec![survivors[1].clone()];
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // (b) a 60 s lease without keep-alives, ~10 s before the kill.
    let (lease_b, b_granted_sent, b_granted_acked) = rt.block_on(async {
        let mut c = client_for(&survivors).await;
        let sent = Instant::now();
        let r = bounded("lease grant (b)", c.lease_grant(LEASE_B_TTL, None))
            .await
            .expect("grant lease (b)");
        (r.id(), sent, Instant::now())
    });

    // (a) a short lease kept alive through a follower, and (c) a lock held with it. The lock's
    // outcome is checked last, so that the other checks report first.
    let stop_keepalive = Arc::new(AtomicBool::new(false));
    let keepalives = Arc::new(Mutex::new(KeepAlives::default()));
    let (lease_a, lock_key) = rt.block_on(async {
        let mut c = client_for(&via_follower).await;
        let a = bounded("lease grant (a)", c.lease_grant(LEASE_A_TTL, None))
            .await
            .expect("grant lease (a)")
            .id();
        tokio::spawn(keep_alive_loop(
            c.clone(),
            a,
            stop_keepalive.clone(),
            keepalives.clone(),
        ));
        let lock = bounded(
            "lock",
            c.lock("failover-lock", Some(LockOptions::new().with_lease(a))),
        )
        .await
        .map(|l| l.key().to_vec())
        .map_err(|e| format!("taking the lock with lease (a) before the kill failed: {e}"));
        (a, lock)
    });

    // (d) a watch on a surviving member, and a writer under its prefix.
    let prefix = "fo/";
    let seen = rt.block_on(async {
        let c = client_for(&watch_member).await;
        spawn_watch(&c, prefix, 0).await
    });
    let stop_writer = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let writer = {
        let stop = stop_writer.clone();
        let survivors = survivors.clone();
        let acked_count = acked_count.clone();
        rt.spawn(async move {
            let c = client_for(&survivors).await;
            write_keys(c, prefix.to_string(), stop, acked_count).await
        })
    };

    // Kill the leader once lease (b) is ~10 s old.
    let age = b_granted_acked.elapsed();
    if age < LEASE_B_AGE_AT_KILL {
        std::thread::sleep(LEASE_B_AGE_AT_KILL - age);
    }
    let killed_at = Instant::now();
    cluster.members[old_leader].kill9();
    let new_leader = wait_for_leader(&cluster, ELECTION_LIMIT);
    let elected_after = killed_at.elapsed();
    let elected_at = killed_at + elected_after;
    assert_ne!(new_leader, old_leader, "the killed member cannot lead");
    eprintln!(
        "failover: member {old_leader} (leader) killed; member {new_leader} leads after {:.2}s",
        elected_after.as_secs_f64()
    );

    rt.block_on(async {
        let mut c = client_for(&survivors).await;

        // (b) the remaining TTL went on counting down through the failover.
        let asked = Instant::now();
        let ttl_b = bounded("time to live (b)", c.lease_time_to_live(lease_b, None))
            .await
            .expect("time to live of lease (b)");
        let answered = Instant::now();
        let elapsed_min = asked.duration_since(b_granted_acked).as_secs_f64();
        let elapsed_max = answered.duration_since(b_granted_sent).as_secs_f64();
        let upper = (LEASE_B_TTL as f64 - elapsed_min).ceil() as i64 + 2;
        let lower = (LEASE_B_TTL as f64 - elapsed_max).floor() as i64 - 2;
        eprintln!(
            "failover: lease (b) granted {LEASE_B_TTL}s, {elapsed_min:.1}s ago: TimeToLive ttl={} \
             granted_ttl={} (accepted {lower}..={upper})",
            ttl_b.ttl(),
            ttl_b.granted_ttl()
        );
        assert_eq!(ttl_b.granted_ttl(), LEASE_B_TTL, "lease (b) granted TTL");
        assert!(
            ttl_b.ttl() <= upper,
            "lease (b): TimeToLive shows ttl={} after the failover, {elapsed_min:.1}s after a \
             {LEASE_B_TTL}s grant: the new leader restarted its TTL instead of keeping the \
             remaining ~{:.0}s (accepted at most {upper})",
            ttl_b.ttl(),
            LEASE_B_TTL as f64 - elapsed_min
        );
        assert!(
            ttl_b.ttl() >= lower,
            "lease (b): ttl={} is below the remaining TTL (accepted at least {lower})",
            ttl_b.ttl()
        );

        // (a) keep-alives through the follower are answered again after the election.
        let deadline = Instant::now() + REQUEST_LIMIT;
        loop {
            let after: usize = keepalives
                .lock()
                .unwrap()
                .answers
                .iter()
                .filter(|(t, ttl)| *t > elected_at && *ttl > 0)
                .count();
            if after >= 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "lease (a): only {after} keep-alive answers since the new leader was elected; \
                 errors: {:?}",
                keepalives
                    .lock()
                    .unwrap()
                    .errors
                    .iter()
                    .map(|(_, e)| e.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        {
            let k = keepalives.lock().unwrap();
            let lost = k.answers.iter().filter(|(_, t)| *t <= 0).count();
            assert_eq!(
                lost, 0,
                "lease (a): keep-alives answered ttl <= 0 (lease lost)"
            );
            eprintln!(
                "failover: lease (a): {} keep-alive answers ({} after the election), {} errors",
                k.answers.len(),
                k.answers.iter().filter(|(t, _)| *t > elected_at).count(),
                k.errors.len()
            );
        }
        let ttl_a = bounded(
            "time to live (a)",
            c.lease_time_to_live(lease_a, Some(LeaseTimeToLiveOptions::new().with_keys())),
        )
        .await
        .expect("time to live of lease (a)");
        assert!(
            ttl_a.ttl() > 0,
            "lease (a) is gone after the failover: ttl={}",
            ttl_a.ttl()
        );

        // (d) the writer goes on through the new leader; then stop it and check the watch.
        let acked_at_election = acked_count.load(Ordering::Relaxed);
        let deadline = Instant::now() + REQUEST_LIMIT;
        while acked_count.load(Ordering::Relaxed) < acked_at_election + 20 {
            assert!(
                Instant::now() < deadline,
                "the writer got no 20 puts acknowledged within {REQUEST_LIMIT:?} after the election"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_writer.store(true, Ordering::Relaxed);
        let written = writer.await.expect("writer task");
        let acked_before = written.acked_at.iter().filter(|t| **t < killed_at).count();
        let acked_after = written.acked_at.iter().filter(|t| **t > elected_at).count();
        assert!(
            acked_before > 0 && acked_after > 0,
            "the writer must have puts acknowledged before the kill and after the election: \
             {acked_before} before, {acked_after} after ({} failed)",
            written.failed
        );
        let last = max_rev_under(&mut c, prefix).await;
        wait_for_rev(&seen, last, "watch on a surviving member").await;
        let events = seen.lock().unwrap().events.clone();
        let watch_c = client_for(&watch_member).await;
        assert_complete_stream(
            &watch_c,
            prefix,
            &events,
            &written,
            "watch on a surviving member",
        )
        .await;
        eprintln!(
            "failover: writer: {} puts acknowledged ({acked_before} before the kill, {acked_after} \
             after the election), {} failed; the watch saw {} events up to revision {last}",
            written.acked.len(),
            written.failed,
            events.len()
        );

        // (c) the lock is still held with lease (a); a contender waits until it is unlocked.
        let lock_key = lock_key.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ttl_a.keys().iter().any(|k| k == &lock_key),
            "lease (a) no longer holds the lock key: keys {:?}",
            ttl_a.keys()
        );
        let held = bounded("get lock key", c.get(lock_key.clone(), None))
            .await
            .expect("get the lock key");
        let kv = held.kvs().first().unwrap_or_else(|| {
            panic!(
                "the lock key {} vanished in the failover",
                String::from_utf8_lossy(&lock_key)
            )
        });
        assert_eq!(kv.lease(), lease_a, "the lock key's lease");

        let mut contender = patient_client(&survivors).await;
        let lease_c = bounded("lease grant (contender)", contender.lease_grant(60, None))
            .await
            .expect("grant the contender's lease")
            .id();
        let mut contending = contender.clone();
        let attempt = tokio::spawn(async move {
            contending
                .lock(
                    "failover-lock",
                    Some(LockOptions::new().with_lease(lease_c)),
                )
                .await
        });
        tokio::time::sleep(CONTENDER_BLOCKED_FOR).await;
        assert!(
            !attempt.is_finished(),
            "a second contender got (or failed) the lock within {CONTENDER_BLOCKED_FOR:?} \
             while it is held: {:?}",
            attempt.await
        );
        bounded("unlock", c.unlock(lock_key.clone()))
            .await
            .expect("unlock the held lock");
        let got = tokio::time::timeout(REQUEST_LIMIT, attempt)
            .await
            .unwrap_or_else(|_| {
                panic!("the contender did not get the lock within {REQUEST_LIMIT:?} of the unlock")
            })
            .expect("contender task")
            .expect("the contender's lock call");
        assert_ne!(
            got.key(),
            &lock_key[..],
            "the contender got the old holder's key"
        );
        let owner = bounded("get contender key", c.get(got.key(), None))
            .await
            .expect("get the contender's lock key");
        assert_eq!(
            owner.kvs().first().map(|kv| kv.lease()),
            Some(lease_c),
            "the contender's lock key and lease"
        );
        bounded("unlock (contender)", contender.unlock(got.key()))
            .await
            .expect("the contender unlocks");
        eprintln!("failover: the lock survived; a contender got it only after the unlock");
    });
    stop_keepalive.store(true, Ordering::Relaxed);
    rt.shutdown_timeout(Duration::from_secs(2));
}

#[test]
fn a_watch_on_the_killed_leader_resumed_on_a_survivor_from_its_last_revision_has_no_gap_or_duplicate(
) {
    let mut cluster = Cluster::start(Flavor::Synod, 3);
    let old_leader = wait_for_leader(&cluster, ELECTION_LIMIT);
    let endpoints = cluster.endpoints();
    let survivors = all_but(&endpoints, old_leader);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prefix = "resume/";

    let first = rt.block_on(async {
        let c = client_for(&[endpoints[old_leader].clone()]).await;
        spawn_watch(&c, prefix, 0).await
    });
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop_writer.clone();
        let survivors = survivors.clone();
        rt.spawn(async move {
            let c = client_for(&survivors).await;
            write_keys(c, prefix.to_string(), stop, Arc::new(AtomicUsize::new(0))).await
        })
    };
    // Let the watch on the leader see some events, then kill the leader under load.
    rt.block_on(wait_for_events(&first, 50, "the watch on the leader"));
    let killed_at = Instant::now();
    cluster.members[old_leader].kill9();

    // The client notices the broken stream (bounded), then resumes on a survivor.
    let last_seen = rt.block_on(async {
        let deadline = Instant::now() + WATCH_LIMIT;
        loop {
            if let Some(end) = first.lock().unwrap().end.clone() {
                eprintln!(
                    "failover: watch on the killed leader ended after {:.2}s: {end}",
                    killed_at.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the watch stream on the killed leader did not fail within {WATCH_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        first.lock().unwrap().last_rev()
    });
    let new_leader = wait_for_leader(&cluster, ELECTION_LIMIT);
    eprintln!(
        "failover: member {old_leader} (leader) killed; member {new_leader} leads after {:.2}s",
        killed_at.elapsed().as_secs_f64()
    );
    rt.block_on(async {
        let c = client_for(&[survivors[0].clone()]).await;
        let resumed = spawn_watch(&c, prefix, last_seen + 1).await;
        // Keep writing through the new leader for a while, then stop and drain.
        let mut probe = client_for(&survivors).await;
        wait_for_events(&resumed, 50, "the resumed watch").await;
        stop_writer.store(true, Ordering::Relaxed);
        let written = writer.await.expect("writer task");
        let last = max_rev_under(&mut probe, prefix).await;
        wait_for_rev(&resumed, last, "resumed watch").await;
        let before: Vec<Ev> = first.lock().unwrap().events.clone();
        let after: Vec<Ev> = resumed.lock().unwrap().events.clone();
        eprintln!(
            "failover: {} events on the leader up to revision {last_seen}, {} resumed from {} up to {last}; \
             writer: {} acknowledged, {} failed",
            before.len(),
            after.len(),
            last_seen + 1,
            written.acked.len(),
            written.failed
        );
        let combined: Vec<Ev> = before.into_iter().chain(after).collect();
        assert_complete_stream(&c, prefix, &combined, &written, "watch resumed on a survivor")
            .await;
    });
    rt.shutdown_timeout(Duration::from_secs(2));
}
