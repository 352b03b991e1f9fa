//! Writes a follower receives are forwarded to the leader: a 3-member etcd 3.4 cluster and a
//! 3-member Synod cluster get the same writes, every one sent to a follower, and must answer
//! alike.
//!
//! * Many concurrent puts through one follower (Synod forwards them on one stream, many in
//!   flight): each is answered once, with its own revision; the revisions are exactly the next
//!   ones of the store; each key is stored once (version 1) at the revision its answer named.
//! * A sequence through a follower touching every kind of forwarded write and its answers and
//!   errors (put with prev_kv, txn both ways, delete with prev_kv, lease grant with and without
//!   an id, put with a lease, revoke, an unknown lease, a compaction and compacted reads): the
//!   two transcripts are equal once lease ids are left aside and revisions are counted from the
//!   sequence's start.

use std::collections::BTreeSet;
use std::time::Duration;

use compat_tests::{client_for, Cluster, Flavor};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

/// Concurrent writers through the follower, and puts each.
const WRITERS: usize = 16;
const PUTS_PER_WRITER: usize = 25;
/// Bound on any request of the test.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(REQUEST_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {REQUEST_LIMIT:?}"))
}

/// A started cluster and the endpoint of one of its followers.
fn cluster_and_follower(flavor: Flavor) -> (Cluster, String) {
    let cluster = Cluster::start(flavor, 3);
    let leader = cluster
        .leader_index()
        .unwrap_or_else(|| panic!("{flavor:?}: no member reports itself leader"));
    let follower = cluster.endpoints()[(leader + 1) % 3].clone();
    (cluster, follower)
}

/// What the concurrent puts showed, in terms both servers must agree on.
#[derive(Debug, PartialEq)]
struct ConcurrentOutcome {
    answered: usize,
    distinct_revisions: usize,
    /// The answered revisions, less the store's revision before the puts, in order.
    revisions_from_start: Vec<i64>,
    stored_keys: usize,
    /// Keys stored at a revision other than the one their put was answered with.
    stored_elsewhere: Vec<String>,
    /// Keys whose version is not 1.
    applied_more_than_once: Vec<String>,
}

async fn concurrent_puts_through(follower: &str, leader_side: &[String]) -> ConcurrentOutcome {
    let client = client_for(&[follower.to_string()]).await;
    let mut probe = client.clone();
    let start = bounded("get before the puts", probe.get("cp/", None))
        .await
        .expect("get before the puts")
        .header()
        .expect("header")
        .revision();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = client.clone();
        writers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..PUTS_PER_WRITER {
                let key = format!("cp/{w:02}/{i:02}");
                let resp = bounded(&format!("put {key}"), c.put(key.clone(), "v", None))
                    .await
                    .unwrap_or_else(|e| panic!("put {key} through a follower: {e}"));
                answers.push((key, resp.header().expect("header").revision()));
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for w in writers {
        answers.extend(w.await.expect("writer task"));
    }
    // Read back through the other members, linearizably.
    let mut reader = client_for(leader_side).await;
    let stored = bounded(
        "range over the keys",
        reader.get("cp/", Some(GetOptions::new().with_prefix())),
    )
    .await
    .expect("range over the keys");
    let mut revisions: Vec<i64> = answers.iter().map(|(_, r)| r - start).collect();
    revisions.sort_unstable();
    let answered_at: std::collections::HashMap<&str, i64> =
        answers.iter().map(|(k, r)| (k.as_str(), *r)).collect();
    let mut stored_elsewhere = Vec::new();
    let mut applied_more_than_once = Vec::new();
    for kv in stored.kvs() {
        let key = kv.key_str().expect("utf-8 key").to_string();
        if answered_at.get(key.as_str()) != Some(&kv.mod_revision()) {
            stored_elsewhere.push(key.clone());
        }
        if kv.version() != 1 {
            applied_more_than_once.push(key);
        }
    }
    ConcurrentOutcome {
        answered: answers.len(),
        distinct_revisions: answers
            .iter()
            .map(|(_, r)| *r)
            .collect::<BTreeSet<_>>()
            .len(),
        revisions_from_start: revisions,
        stored_keys: stored.kvs().len(),
        stored_elsewhere,
        applied_more_than_once,
    }
}

fn error_line(what: &str, e: etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{what}: {:?} {}", s.code(), s.message()),
        other => format!("{what}: {other}"),
    }
}

/// One line per answer, with revisions counted from `start` and lease ids left out.
async fn sequence_through(c: &mut Client) -> Vec<String> {
    let start = bounded("get", c.get("seq/", None))
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    let rel = |r: i64| r - start;
    let mut out = Vec::new();

    let r = bounded("put", c.put("seq/a", "1", None))
        .await
        .expect("put");
    out.push(format!(
        "put seq/a: rev +{}",
        rel(r.header().expect("h").revision())
    ));
    let r = bounded(
        "put prev",
        c.put("seq/a", "2", Some(PutOptions::new().with_prev_key())),
    )
    .await
    .expect("put with prev_kv");
    let prev = r.prev_key().expect("prev_kv");
    out.push(format!(
        "put seq/a prev_kv: rev +{}, prev {}={} mod +{} version {}",
        rel(r.header().expect("h").revision()),
        prev.key_str().expect("utf-8"),
        prev.value_str().expect("utf-8"),
        rel(prev.mod_revision()),
        prev.version()
    ));

    for (what, version) in [("txn that succeeds", 2), ("txn that fails", 7)] {
        let txn = Txn::new()
            .when([Compare::version("seq/a", CompareOp::Equal, version)])
            .and_then([TxnOp::put("seq/b", "then", None)])
            .or_else([TxnOp::get("seq/a", None)]);
        let r = bounded(what, c.txn(txn)).await.expect(what);
        let answers: Vec<String> = r
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Put(p) => {
                    format!("put(prev {:?})", p.prev_key().map(|k| k.key().to_vec()))
                }
                TxnOpResponse::Get(g) => format!(
                    "get({})",
                    g.kvs()
                        .iter()
                        .map(|kv| format!(
                            "{}={}",
                            kv.key_str().expect("utf-8"),
                            kv.value_str().expect("utf-8")
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                other => format!("{other:?}"),
            })
            .collect();
        out.push(format!(
            "{what}: succeeded {} rev +{} {:?}",
            r.succeeded(),
            rel(r.header().expect("h").revision()),
            answers
        ));
    }

    let r = bounded(
        "delete",
        c.delete("seq/b", Some(DeleteOptions::new().with_prev_key())),
    )
    .await
    .expect("delete with prev_kv");
    out.push(format!(
        "delete seq/b prev_kv: deleted {} rev +{} prev {:?}",
        r.deleted(),
        rel(r.header().expect("h").revision()),
        r.prev_kvs()
            .iter()
            .map(|kv| kv.value_str().expect("utf-8").to_string())
            .collect::<Vec<_>>()
    ));

    // A grant without an id: the leader picks one (Synod: the follower forwards id 0).
    let lease = bounded("lease grant", c.lease_grant(30, None))
        .await
        .expect("lease grant");
    out.push(format!(
        "lease grant ttl 30: id is set {}, ttl {}, rev +{}",
        lease.id() != 0,
        lease.ttl(),
        rel(lease.header().expect("h").revision())
    ));
    let r = bounded(
        "put with lease",
        c.put("seq/l", "x", Some(PutOptions::new().with_lease(lease.id()))),
    )
    .await
    .expect("put with the lease");
    out.push(format!(
        "put seq/l with the lease: rev +{}",
        rel(r.header().expect("h").revision())
    ));
    let r = bounded("revoke", c.lease_revoke(lease.id()))
        .await
        .expect("revoke");
    out.push(format!(
        "revoke: rev +{}",
        rel(r.header().expect("h").revision())
    ));
    let r = bounded("get seq/l", c.get("seq/l", None))
        .await
        .expect("get seq/l");
    out.push(format!(
        "get seq/l after the revoke: {} keys",
        r.kvs().len()
    ));

    // A grant with a chosen id, then the same id again.
    let id = 0x5eed_0000_0000_0001;
    let r = bounded(
        "grant with id",
        c.lease_grant(30, Some(etcd_client::LeaseGrantOptions::new().with_id(id))),
    )
    .await
    .expect("grant with an id");
    out.push(format!("lease grant with id: same id {}", r.id() == id));
    let e = bounded(
        "grant same id",
        c.lease_grant(30, Some(etcd_client::LeaseGrantOptions::new().with_id(id))),
    )
    .await
    .expect_err("the same id twice");
    out.push(error_line("lease grant with the same id", e));

    let e = bounded(
        "put unknown lease",
        c.put("seq/u", "x", Some(PutOptions::new().with_lease(0x0bad))),
    )
    .await
    .expect_err("a put with an unknown lease");
    out.push(error_line("put with an unknown lease", e));

    let now = bounded("get", c.get("seq/", None))
        .await
        .expect("get")
        .header()
        .expect("h")
        .revision();
    let r = bounded("compact", c.compact(now, None))
        .await
        .expect("compact");
    out.push(format!(
        "compact at +{}: rev +{}",
        rel(now),
        rel(r.header().expect("h").revision())
    ));
    let e = bounded("compact again", c.compact(now - 1, None))
        .await
        .expect_err("compacting below the compaction");
    out.push(error_line("compact below it", e));
    let e = bounded(
        "compacted read",
        c.get("seq/a", Some(GetOptions::new().with_revision(start))),
    )
    .await
    .expect_err("a read at a compacted revision");
    out.push(error_line("read at a compacted revision", e));
    out
}

#[test]
fn writes_sent_to_a_follower_are_answered_and_applied_like_etcds() {
    let mut transcripts = Vec::new();
    let mut outcomes = Vec::new();
    for flavor in [Flavor::Etcd, Flavor::Synod] {
        let (cluster, follower) = cluster_and_follower(flavor);
        let others: Vec<String> = cluster
            .endpoints()
            .into_iter()
            .filter(|e| *e != follower)
            .collect();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let outcome = runtime.block_on(concurrent_puts_through(&follower, &others));
        let transcript = runtime.block_on(async {
            let mut c = client_for(std::slice::from_ref(&follower)).await;
            sequence_through(&mut c).await
        });
        eprintln!(
            "{flavor:?}: {} concurrent puts answered through a follower",
            outcome.answered
        );
        outcomes.push(outcome);
        transcripts.push(transcript);
    }
    let expected = ConcurrentOutcome {
        answered: WRITERS * PUTS_PER_WRITER,
        distinct_revisions: WRITERS * PUTS_PER_WRITER,
        revisions_from_start: (1..=(WRITERS * PUTS_PER_WRITER) as i64).collect(),
        stored_keys: WRITERS * PUTS_PER_WRITER,
        stored_elsewhere: Vec::new(),
        applied_more_than_once: Vec::new(),
    };
    assert_eq!(outcomes[0], expected, "etcd 3.4 itself");
    assert_eq!(outcomes[1], expected, "Synod");
    for line in &transcripts[0] {
        eprintln!("etcd 3.4: {line}");
    }
    assert_eq!(
        transcripts[1], transcripts[0],
        "Synod (left) and etcd 3.4 (right) differ"
    );
}
