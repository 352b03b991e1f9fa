//! Watch API behaviour through the etcd-client crate, as a specification.
//!
//! Every test body is a `scenario` run twice (by the harness's `on_both`):
//! first against upstream etcd 3.4 (which proves the expectation is
//! upstream's behaviour), then against a Synod single member. Each run gets
//! its own fresh server, started and stopped by the test.
//!
//! Responses are compared as a whole ([`Resp`]: every field of a
//! `WatchResponse`, events written as `PUT key=value @mod_revision` /
//! `DELETE key @mod_revision`), so a test states exactly what the client sees.
//!
//! Waiting: every receive is bounded by [`RECV_TIMEOUT`] and a hang fails with
//! a message; no test asserts how fast anything happens. The absence of an
//! event is never asserted by waiting. Instead a later write to a *fence* key
//! is watched: a stream delivers the events of every watcher on it in
//! revision order, so once the fence's event has arrived, any event of an
//! earlier revision would have arrived before it.

use std::time::Duration;

use compat_tests::{
    current_revision, on_both, on_both_with, put, put_with_lease, Flavor, MemberSpec, Server,
};
use etcd_client::{
    Client, DeleteOptions, Event, EventType, GetOptions, KeyValue, Txn, TxnOp, WatchFilterType,
    WatchOptions, WatchResponse, WatchStream,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// How long a test waits for one watch response before failing.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// Every field of a watch response, for whole-response comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resp {
    watch_id: i64,
    created: bool,
    canceled: bool,
    compact_revision: i64,
    cancel_reason: String,
    fragment: bool,
    /// The header's revision.
    revision: i64,
    /// [`ev`] of each event, in order.
    events: Vec<String>,
}

impl Resp {
    /// A response for `watch_id` with header revision `revision`, no flag
    /// set and no events; tests fill in the rest with `..`.
    fn new(watch_id: i64, revision: i64) -> Resp {
        Resp {
            watch_id,
            created: false,
            canceled: false,
            compact_revision: 0,
            cancel_reason: String::new(),
            fragment: false,
            revision,
            events: Vec::new(),
        }
    }

    /// A response delivering `events` to `watch_id`.
    fn events(watch_id: i64, revision: i64, events: &[&str]) -> Resp {
        Resp {
            events: events.iter().map(|e| e.to_string()).collect(),
            ..Resp::new(watch_id, revision)
        }
    }

    /// A response delivering one event to `watch_id`: the put of
    /// `key=value` at revision `rev`, which is also its header's revision.
    fn put(watch_id: i64, rev: i64, key: &str, value: &str) -> Resp {
        Resp::events(watch_id, rev, &[&format!("PUT {key}={value} @{rev}")])
    }

    /// The created response of a watcher.
    fn created(watch_id: i64, revision: i64) -> Resp {
        Resp {
            created: true,
            ..Resp::new(watch_id, revision)
        }
    }
}

fn summary(r: &WatchResponse) -> Resp {
    Resp {
        watch_id: r.watch_id(),
        created: r.created(),
        canceled: r.canceled(),
        compact_revision: r.compact_revision(),
        cancel_reason: r.cancel_reason().to_string(),
        fragment: r.0.fragment,
        revision: r
            .header()
            .unwrap_or_else(|| panic!("every watch response carries a header: {r:?}"))
            .revision(),
        events: r.events().iter().map(ev).collect(),
    }
}

fn text(b: &[u8]) -> String {
    if b.len() > 64 {
        format!("<{} bytes>", b.len())
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

/// `PUT key=value @mod_revision` or `DELETE key @mod_revision`.
fn ev(e: &Event) -> String {
    let kv = e.kv().expect("every event carries a kv");
    match e.event_type() {
        EventType::Put => format!(
            "PUT {}={} @{}",
            text(kv.key()),
            text(kv.value()),
            kv.mod_revision()
        ),
        EventType::Delete => format!("DELETE {} @{}", text(kv.key()), kv.mod_revision()),
    }
}

/// Every field of a key-value: (key, value, create, mod, version, lease).
fn kv_fields(kv: &KeyValue) -> (String, String, i64, i64, i64, i64) {
    (
        text(kv.key()),
        text(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease(),
    )
}

fn fields(
    key: &str,
    value: &str,
    create: i64,
    modr: i64,
    version: i64,
    lease: i64,
) -> (String, String, i64, i64, i64, i64) {
    (
        key.to_string(),
        value.to_string(),
        create,
        modr,
        version,
        lease,
    )
}

/// The next response on the stream; fails if none arrives within
/// [`RECV_TIMEOUT`] or the stream ends or errs.
async fn next(s: &mut WatchStream) -> WatchResponse {
    match tokio::time::timeout(RECV_TIMEOUT, s.message()).await {
        Err(_) => panic!("no watch response within {RECV_TIMEOUT:?}"),
        Ok(Err(e)) => panic!("the watch stream failed: {e}"),
        Ok(Ok(None)) => panic!("the watch stream ended"),
        Ok(Ok(Some(r))) => r,
    }
}

/// [`summary`] of the next response.
async fn next_resp(s: &mut WatchStream) -> Resp {
    summary(&next(s).await)
}

/// The next response must be the created response of a new watcher (no
/// events, not canceled); returns its watch id.
async fn expect_created(s: &mut WatchStream) -> i64 {
    let r = next_resp(s).await;
    assert!(
        r.created && !r.canceled && r.events.is_empty() && !r.fragment,
        "expected the created response of the new watcher, got {r:?}"
    );
    r.watch_id
}

/// Opens a watch stream with one watcher; returns the stream and the
/// watcher's id once its created response has arrived.
async fn watch(c: &mut Client, key: &str, opts: WatchOptions) -> (WatchStream, i64) {
    let mut s = c.watch(key, Some(opts)).await.expect("open a watch stream");
    let id = expect_created(&mut s).await;
    (s, id)
}

/// Adds a watcher to the stream `s`; returns its id once its created
/// response has arrived.
async fn add_watcher(s: &mut WatchStream, key: &str, opts: WatchOptions) -> i64 {
    s.watch(key, Some(opts))
        .await
        .expect("add a watcher to the stream");
    expect_created(s).await
}

/// Receives responses until `n` events have arrived in total; every response
/// must carry events. Returns (watch id, event) pairs in arrival order.
async fn collect_events(s: &mut WatchStream, n: usize) -> Vec<(i64, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let r = next_resp(s).await;
        assert!(
            !r.events.is_empty() && !r.created && !r.canceled,
            "expected a response with events (have {got:?} so far), got {r:?}"
        );
        got.extend(r.events.iter().map(|e| (r.watch_id, e.clone())));
    }
    assert_eq!(got.len(), n, "more events than expected: {got:?}");
    got
}

/// The events of `id` among `got`, in order.
fn events_of(got: &[(i64, String)], id: i64) -> Vec<String> {
    got.iter()
        .filter(|(w, _)| *w == id)
        .map(|(_, e)| e.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Key ranges
// ---------------------------------------------------------------------------

#[tokio::test]
async fn watch_on_a_key_is_created_at_the_current_revision_and_sees_only_that_keys_puts_and_deletes(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let start = current_revision(&mut c).await;
        let mut s = c.watch("k", None).await.unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp::created(0, start),
            "the first watcher of a stream gets id 0; its created response carries the current revision"
        );

        put(&mut c, "k1", "other").await;
        put(&mut c, "j", "other").await;
        let r1 = put(&mut c, "k", "v1").await;
        let r2 = put(&mut c, "k", "v2").await;
        put(&mut c, "kk", "other").await;
        c.delete("kk", None).await.unwrap();
        let r3 = c
            .delete("k", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let r4 = put(&mut c, "k", "again").await;

        let r = next(&mut s).await;
        assert_eq!(
            summary(&r),
            Resp::put(0, r1, "k", "v1"),
            "a live event's header carries the revision of the event"
        );
        assert_eq!(r.events()[0].event_type(), EventType::Put);
        assert_eq!(
            kv_fields(r.events()[0].kv().unwrap()),
            fields("k", "v1", r1, r1, 1, 0)
        );
        assert!(
            r.events()[0].prev_kv().is_none(),
            "no prev_kv unless asked for"
        );

        let r = next(&mut s).await;
        assert_eq!(summary(&r), Resp::put(0, r2, "k", "v2"));
        assert_eq!(
            kv_fields(r.events()[0].kv().unwrap()),
            fields("k", "v2", r1, r2, 2, 0)
        );

        let r = next(&mut s).await;
        assert_eq!(
            summary(&r),
            Resp::events(0, r3, &[&format!("DELETE k @{r3}")])
        );
        assert_eq!(r.events()[0].event_type(), EventType::Delete);
        assert_eq!(
            kv_fields(r.events()[0].kv().unwrap()),
            fields("k", "", 0, r3, 0, 0),
            "a delete event's kv has only the key and the deletion revision"
        );

        let r = next(&mut s).await;
        assert_eq!(summary(&r), Resp::put(0, r4, "k", "again"));
        assert_eq!(
            kv_fields(r.events()[0].kv().unwrap()),
            fields("k", "again", r4, r4, 1, 0),
            "a key put again after its deletion starts a new generation"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_with_a_prefix_sees_exactly_the_keys_that_start_with_it() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, id) = watch(&mut c, "p/", WatchOptions::new().with_prefix()).await;
        let mut expected = Vec::new();
        for (key, matches) in [
            ("p", false),
            ("p/", true),
            ("p.", false),
            ("p/a", true),
            ("p0", false),
            ("p/b/c", true),
            ("q", false),
            ("o", false),
            ("p/\u{7f}", true),
        ] {
            let rev = put(&mut c, key, "v").await;
            if matches {
                expected.push(format!("PUT {key}=v @{rev}"));
            }
        }
        let got = collect_events(&mut s, expected.len()).await;
        assert_eq!(events_of(&got, id), expected);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_on_a_range_sees_keys_from_the_start_key_up_to_but_excluding_the_end_key() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, id) = watch(&mut c, "b", WatchOptions::new().with_range("d")).await;
        let mut expected = Vec::new();
        for (key, matches) in [
            ("a", false),
            ("b", true),
            ("az", false),
            ("c/x", true),
            ("d", false),
            ("cz", true),
            ("d0", false),
            ("b", true),
        ] {
            let rev = put(&mut c, key, "v").await;
            if matches {
                expected.push(format!("PUT {key}=v @{rev}"));
            }
        }
        let del = c
            .delete("a", Some(DeleteOptions::new().with_range("e")))
            .await
            .unwrap();
        let rev = del.header().unwrap().revision();
        let got = collect_events(&mut s, expected.len() + 3).await;
        expected.extend([
            format!("DELETE b @{rev}"),
            format!("DELETE c/x @{rev}"),
            format!("DELETE cz @{rev}"),
        ]);
        assert_eq!(
            events_of(&got, id),
            expected,
            "a delete-range wider than the watched range reports only the watched keys"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_with_range_end_nul_sees_every_key_from_the_start_key_on() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, from_m) = watch(&mut c, "m", WatchOptions::new().with_from_key()).await;
        let all = add_watcher(&mut s, "", WatchOptions::new().with_all_keys()).await;
        assert_eq!((from_m, all), (0, 1));

        let mut expect_from_m = Vec::new();
        let mut expect_all = Vec::new();
        for key in ["a", "m", "l\u{7f}", "mm", "zzz", "\u{1}"] {
            let rev = put(&mut c, key, "v").await;
            let e = format!("PUT {key}=v @{rev}");
            if key >= "m" {
                expect_from_m.push(e.clone());
            }
            expect_all.push(e);
        }
        let got = collect_events(&mut s, expect_from_m.len() + expect_all.len()).await;
        assert_eq!(events_of(&got, from_m), expect_from_m);
        assert_eq!(
            events_of(&got, all),
            expect_all,
            "key \\0 with range_end \\0 watches every key"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_on_an_empty_range_is_created_and_canceled_at_once_with_watch_id_minus_one() {
    async fn scenario(_: &Server, mut c: Client) {
        const EMPTY: &str = "mvcc: watcher range is empty";
        let now = current_revision(&mut c).await;
        let mut s = c
            .watch("b", Some(WatchOptions::new().with_range("a")))
            .await
            .unwrap();
        let refused = Resp {
            created: true,
            canceled: true,
            cancel_reason: EMPTY.to_string(),
            ..Resp::new(-1, now)
        };
        assert_eq!(next_resp(&mut s).await, refused, "range end before the key");

        s.watch("b", Some(WatchOptions::new().with_range("b")))
            .await
            .unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            refused,
            "range end equal to the key"
        );

        // The stream stays usable and the refused watchers used up no id.
        s.watch("b", Some(WatchOptions::new().with_range("c")))
            .await
            .unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(0, now));
        let rev = put(&mut c, "b", "v").await;
        assert_eq!(next_resp(&mut s).await, Resp::put(0, rev, "b", "v"));
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Start revision
// ---------------------------------------------------------------------------

#[tokio::test]
async fn watch_from_a_past_revision_replays_history_in_one_response_at_the_current_revision_then_streams_live_events(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let r1 = put(&mut c, "h/a", "1").await;
        let r2 = put(&mut c, "h/b", "1").await;
        let r3 = put(&mut c, "h/a", "2").await;
        let r4 = put(&mut c, "other", "x").await;
        let r5 = c
            .delete("h/b", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let r6 = put(&mut c, "h/c", "1").await;
        let r7 = put(&mut c, "other", "y").await;

        let (mut s, id) = watch(
            &mut c,
            "h/",
            WatchOptions::new().with_prefix().with_start_revision(r2),
        )
        .await;
        assert_eq!(
            next_resp(&mut s).await,
            Resp::events(
                id,
                r7,
                &[
                    &format!("PUT h/b=1 @{r2}"),
                    &format!("PUT h/a=2 @{r3}"),
                    &format!("DELETE h/b @{r5}"),
                    &format!("PUT h/c=1 @{r6}"),
                ]
            ),
            "the history from the start revision on, in revision order, in one response whose \
             header carries the current revision (r1={r1}, r4={r4} are not included)"
        );

        let r8 = put(&mut c, "h/a", "3").await;
        assert_eq!(
            next_resp(&mut s).await,
            Resp::put(id, r8, "h/a", "3"),
            "then live events, nothing repeated"
        );

        // From revision 1: everything since the store was created.
        let (mut s, id) = watch(
            &mut c,
            "h/",
            WatchOptions::new().with_prefix().with_start_revision(1),
        )
        .await;
        let r = next_resp(&mut s).await;
        assert_eq!(r.watch_id, id);
        assert_eq!(r.revision, r8);
        assert_eq!(
            r.events,
            [
                format!("PUT h/a=1 @{r1}"),
                format!("PUT h/b=1 @{r2}"),
                format!("PUT h/a=2 @{r3}"),
                format!("DELETE h/b @{r5}"),
                format!("PUT h/c=1 @{r6}"),
                format!("PUT h/a=3 @{r8}"),
            ]
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_from_a_future_revision_reports_only_events_from_that_revision_on() {
    async fn scenario(_: &Server, mut c: Client) {
        let now = current_revision(&mut c).await;
        let mut s = c
            .watch(
                "fut/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(now + 3),
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp::created(0, now),
            "the created response carries the current revision, not the start revision"
        );
        for k in ["fut/1", "fut/2", "fut/3", "fut/4"] {
            put(&mut c, k, "v").await;
        }
        assert_eq!(
            next_resp(&mut s).await,
            Resp::events(0, now + 3, &[&format!("PUT fut/3=v @{}", now + 3)])
        );
        assert_eq!(
            next_resp(&mut s).await,
            Resp::events(0, now + 4, &[&format!("PUT fut/4=v @{}", now + 4)])
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_created_then_canceled_with_the_compact_revision() {
    async fn scenario(_: &Server, mut c: Client) {
        let mut revs = Vec::new();
        for i in 0..5 {
            revs.push(put(&mut c, "ck", &format!("v{i}")).await);
        }
        let now = revs[4];
        let compacted_at = revs[2];
        c.compact(compacted_at, None).await.unwrap();

        let mut s = c
            .watch("ck", Some(WatchOptions::new().with_start_revision(revs[1])))
            .await
            .unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp::created(0, now),
            "the watcher is first created like any other"
        );
        assert_eq!(
            next_resp(&mut s).await,
            Resp {
                canceled: true,
                compact_revision: compacted_at,
                ..Resp::new(0, 0)
            },
            "then canceled: compact_revision set, no cancel_reason, no events, header revision 0"
        );

        // The compaction revision itself is still watchable.
        let id = add_watcher(
            &mut s,
            "ck",
            WatchOptions::new().with_start_revision(compacted_at),
        )
        .await;
        assert_eq!(id, 1);
        assert_eq!(
            next_resp(&mut s).await,
            Resp::events(
                id,
                now,
                &[
                    &format!("PUT ck=v2 @{}", revs[2]),
                    &format!("PUT ck=v3 @{}", revs[3]),
                    &format!("PUT ck=v4 @{}", revs[4]),
                ]
            )
        );
    }
    on_both(scenario).await;
}

/// etcd 3.4 compares a negative start revision with the compaction revision,
/// which is -1 on a store never compacted: -1 then means "from now on", and
/// anything lower is "compacted" with compact_revision -1.
#[tokio::test]
async fn watch_with_a_negative_start_revision_is_canceled_as_compacted_except_minus_one_on_a_never_compacted_store(
) {
    async fn scenario(_: &Server, mut c: Client) {
        put(&mut c, "neg", "1").await;
        let now = put(&mut c, "neg", "2").await;

        let mut s = c
            .watch("neg", Some(WatchOptions::new().with_start_revision(-1)))
            .await
            .unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(0, now));
        // etcd picks such a watcher up on its next background sync (every
        // 100 ms) and skips what was written before that: write until an
        // event arrives.
        let mut first = None;
        for i in 0..100 {
            let rev = put(&mut c, "neg", &format!("live{i}")).await;
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(200), s.message()).await {
                first = Some((r.expect("watch stream").expect("a response"), i, rev));
                break;
            }
        }
        let (r, i, rev) = first.expect("start revision -1: no event after 100 writes");
        assert_eq!(
            summary(&r),
            Resp::put(0, rev, "neg", &format!("live{i}")),
            "start revision -1 on a never compacted store: live events only, no history"
        );
        let rev = put(&mut c, "neg", "3").await;
        assert_eq!(next_resp(&mut s).await, Resp::put(0, rev, "neg", "3"));

        for start in [-2, -5, i64::MIN] {
            let mut s = c
                .watch("neg", Some(WatchOptions::new().with_start_revision(start)))
                .await
                .unwrap();
            assert_eq!(next_resp(&mut s).await, Resp::created(0, rev));
            assert_eq!(
                next_resp(&mut s).await,
                Resp {
                    canceled: true,
                    compact_revision: -1,
                    ..Resp::new(0, 0)
                },
                "start revision {start} on a never compacted store"
            );
        }

        c.compact(rev, None).await.unwrap();
        for start in [-1, -2] {
            let mut s = c
                .watch("neg", Some(WatchOptions::new().with_start_revision(start)))
                .await
                .unwrap();
            assert_eq!(next_resp(&mut s).await, Resp::created(0, rev));
            assert_eq!(
                next_resp(&mut s).await,
                Resp {
                    canceled: true,
                    compact_revision: rev,
                    ..Resp::new(0, 0)
                },
                "start revision {start} after a compaction at {rev}"
            );
        }
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Options: filters, prev_kv, progress, fragment
// ---------------------------------------------------------------------------

#[tokio::test]
async fn watch_filters_noput_and_nodelete_drop_those_event_types() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, no_put) = watch(
            &mut c,
            "f/",
            WatchOptions::new()
                .with_prefix()
                .with_filters([WatchFilterType::NoPut]),
        )
        .await;
        let no_delete = add_watcher(
            &mut s,
            "f/",
            WatchOptions::new()
                .with_prefix()
                .with_filters([WatchFilterType::NoDelete]),
        )
        .await;
        let neither = add_watcher(
            &mut s,
            "f/",
            WatchOptions::new()
                .with_prefix()
                .with_filters([WatchFilterType::NoPut, WatchFilterType::NoDelete]),
        )
        .await;
        let fence = add_watcher(&mut s, "fence", WatchOptions::new()).await;

        let p1 = put(&mut c, "f/a", "1").await;
        let p2 = put(&mut c, "f/b", "1").await;
        let d1 = c
            .delete("f/a", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let p3 = put(&mut c, "f/a", "2").await;
        let d2 = c
            .delete("f/", Some(DeleteOptions::new().with_prefix()))
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let f = put(&mut c, "fence", "x").await;

        // 3 deletes for no_put, 3 puts for no_delete, 1 fence event
        let got = collect_events(&mut s, 3 + 3 + 1).await;
        assert_eq!(
            events_of(&got, no_put),
            [
                format!("DELETE f/a @{d1}"),
                format!("DELETE f/a @{d2}"),
                format!("DELETE f/b @{d2}"),
            ]
        );
        assert_eq!(
            events_of(&got, no_delete),
            [
                format!("PUT f/a=1 @{p1}"),
                format!("PUT f/b=1 @{p2}"),
                format!("PUT f/a=2 @{p3}"),
            ]
        );
        assert_eq!(events_of(&got, neither), Vec::<String>::new());
        assert_eq!(events_of(&got, fence), [format!("PUT fence=x @{f}")]);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_with_prev_kv_attaches_the_previous_value_to_updates_and_deletes_but_not_to_creates()
{
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, id) = watch(&mut c, "pk", WatchOptions::new().with_prev_key()).await;
        let lease = c.lease_grant(60, None).await.unwrap().id();
        let r1 = put(&mut c, "pk", "1").await;
        let r2 = put_with_lease(&mut c, "pk", "2", lease).await;
        let r3 = c
            .delete("pk", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let r4 = put(&mut c, "pk", "3").await;

        let r = next(&mut s).await;
        assert_eq!(summary(&r), Resp::put(id, r1, "pk", "1"));
        assert!(
            r.events()[0].prev_kv().is_none(),
            "a create has no previous value"
        );

        let r = next(&mut s).await;
        assert_eq!(summary(&r), Resp::put(id, r2, "pk", "2"));
        assert_eq!(
            kv_fields(r.events()[0].kv().unwrap()),
            fields("pk", "2", r1, r2, 2, lease)
        );
        assert_eq!(
            kv_fields(r.events()[0].prev_kv().expect("an update carries prev_kv")),
            fields("pk", "1", r1, r1, 1, 0)
        );

        let r = next(&mut s).await;
        assert_eq!(
            summary(&r),
            Resp::events(id, r3, &[&format!("DELETE pk @{r3}")])
        );
        assert_eq!(
            kv_fields(r.events()[0].prev_kv().expect("a delete carries prev_kv")),
            fields("pk", "2", r1, r2, 2, lease)
        );

        let r = next(&mut s).await;
        assert_eq!(summary(&r), Resp::put(id, r4, "pk", "3"));
        assert!(
            r.events()[0].prev_kv().is_none(),
            "a key created again after a delete has no previous value"
        );

        // Replayed history carries prev_kv too, except where the previous
        // revision is compacted away.
        c.compact(r2, None).await.unwrap();
        let (mut s, id) = watch(
            &mut c,
            "pk",
            WatchOptions::new().with_prev_key().with_start_revision(r2),
        )
        .await;
        let r = next(&mut s).await;
        assert_eq!(
            summary(&r),
            Resp::events(
                id,
                r4,
                &[
                    &format!("PUT pk=2 @{r2}"),
                    &format!("DELETE pk @{r3}"),
                    &format!("PUT pk=3 @{r4}"),
                ]
            )
        );
        let prevs: Vec<_> = r
            .events()
            .iter()
            .map(|e| e.prev_kv().map(kv_fields))
            .collect();
        assert_eq!(
            prevs,
            [None, Some(fields("pk", "2", r1, r2, 2, lease)), None],
            "the update at {r2} has no prev_kv: revision {r1} is compacted"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn watch_with_progress_notify_gets_periodic_empty_responses_at_the_current_revision() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, quiet) = watch(&mut c, "quiet", WatchOptions::new()).await;
        let notified = add_watcher(&mut s, "pn", WatchOptions::new().with_progress_notify()).await;
        let now = current_revision(&mut c).await;

        assert_eq!(
            next_resp(&mut s).await,
            Resp::new(notified, now),
            "a progress notification: the watcher's id, no events, the current revision"
        );

        // The revision moves on through writes the watcher does not see.
        let later = put(&mut c, "unwatched", "x").await;
        loop {
            let r = next_resp(&mut s).await;
            assert_eq!(
                (r.watch_id, r.created, r.canceled, &r.events),
                (notified, false, false, &Vec::new()),
                "only the watcher that asked for progress notifications gets them (quiet is {quiet}): {r:?}"
            );
            if r.revision == later {
                break;
            }
            assert_eq!(r.revision, now, "a notification sent before the write");
        }

        // Events, then notifications at the event's revision.
        let ev_rev = put(&mut c, "pn", "v").await;
        assert_eq!(
            next_resp(&mut s).await,
            Resp::put(notified, ev_rev, "pn", "v")
        );
        assert_eq!(next_resp(&mut s).await, Resp::new(notified, ev_rev));
    }
    on_both_with(
        |f| MemberSpec::new(f).arg("--experimental-watch-progress-notify-interval=1s"),
        scenario,
    )
    .await;
}

#[tokio::test]
async fn progress_request_is_answered_with_watch_id_minus_one_at_the_current_revision() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, id) = watch(&mut c, "rp", WatchOptions::new()).await;
        let rev = put(&mut c, "rp", "v").await;
        assert_eq!(next_resp(&mut s).await, Resp::put(id, rev, "rp", "v"));
        let now = put(&mut c, "unwatched", "v").await;

        s.request_progress().await.unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp::new(-1, now),
            "not tied to any watcher: watch_id -1, no events, the current revision"
        );

        // Also on a stream whose only watcher is gone.
        s.cancel(id).await.unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp {
                canceled: true,
                ..Resp::new(id, now)
            }
        );
        s.request_progress().await.unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::new(-1, now));
    }
    on_both(scenario).await;
}

/// A watcher created with `fragment` gets a response split into pieces once
/// it would reach the server's `--max-request-bytes` plus 512 KiB (etcd's
/// allowance for gRPC overhead). With 200 KiB and 200000-byte values, three
/// events fit in one piece and four do not.
const FRAG_MAX_REQUEST_BYTES: usize = 200 * 1024;
const FRAG_VALUE_BYTES: usize = 200_000;

fn fragment_server(f: Flavor) -> MemberSpec {
    MemberSpec::new(f).arg(format!("--max-request-bytes={FRAG_MAX_REQUEST_BYTES}"))
}

#[tokio::test]
async fn fragmented_catch_up_is_split_at_max_request_bytes_plus_512_kib_with_fragment_set_on_all_but_the_last_piece(
) {
    async fn scenario(_: &Server, mut c: Client) {
        let value = vec![b'x'; FRAG_VALUE_BYTES];
        let mut revs = Vec::new();
        for i in 0..7 {
            let r = c
                .put(format!("frag/{i}"), value.clone(), None)
                .await
                .unwrap();
            revs.push(r.header().unwrap().revision());
        }
        let now = revs[6];
        let evs = |r: std::ops::Range<usize>| -> Vec<String> {
            r.map(|i| format!("PUT frag/{i}=<{FRAG_VALUE_BYTES} bytes> @{}", revs[i]))
                .collect()
        };

        let (mut s, id) = watch(
            &mut c,
            "frag/",
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(revs[0])
                .with_fragment(),
        )
        .await;
        let piece = |events: Vec<String>, fragment: bool| Resp {
            fragment,
            events,
            ..Resp::new(id, now)
        };
        assert_eq!(next_resp(&mut s).await, piece(evs(0..3), true));
        assert_eq!(next_resp(&mut s).await, piece(evs(3..6), true));
        assert_eq!(next_resp(&mut s).await, piece(evs(6..7), false));

        // Without fragment the same catch-up comes whole.
        let (mut s, id) = watch(
            &mut c,
            "frag/",
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(revs[0]),
        )
        .await;
        assert_eq!(
            next_resp(&mut s).await,
            Resp {
                events: evs(0..7),
                ..Resp::new(id, now)
            }
        );
    }
    on_both_with(fragment_server, scenario).await;
}

#[tokio::test]
async fn fragmented_live_revision_with_large_prev_kvs_is_split_into_pieces_of_that_revision() {
    async fn scenario(_: &Server, mut c: Client) {
        let value = vec![b'y'; FRAG_VALUE_BYTES];
        for i in 0..7 {
            c.put(format!("fl/{i}"), value.clone(), None).await.unwrap();
        }
        let (mut s, id) = watch(
            &mut c,
            "fl/",
            WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_fragment(),
        )
        .await;
        let del = c
            .delete("fl/", Some(DeleteOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(del.deleted(), 7);
        let rev = del.header().unwrap().revision();
        let evs = |r: std::ops::Range<usize>| -> Vec<String> {
            r.map(|i| format!("DELETE fl/{i} @{rev}")).collect()
        };
        let piece = |events: Vec<String>, fragment: bool| Resp {
            fragment,
            events,
            ..Resp::new(id, rev)
        };
        let mut prevs = Vec::new();
        for expected in [
            piece(evs(0..3), true),
            piece(evs(3..6), true),
            piece(evs(6..7), false),
        ] {
            let r = next(&mut s).await;
            assert_eq!(summary(&r), expected);
            prevs.extend(
                r.events()
                    .iter()
                    .map(|e| e.prev_kv().expect("prev_kv").value().len()),
            );
        }
        assert_eq!(
            prevs, [FRAG_VALUE_BYTES; 7],
            "every piece keeps its events' prev_kv"
        );
    }
    on_both_with(fragment_server, scenario).await;
}

// ---------------------------------------------------------------------------
// Several watchers, ids, cancel
// ---------------------------------------------------------------------------

#[tokio::test]
async fn several_watchers_on_one_stream_get_ids_in_creation_order_and_only_their_own_events() {
    async fn scenario(_: &Server, mut c: Client) {
        let now = current_revision(&mut c).await;
        let mut s = c.watch("m/a", None).await.unwrap();
        s.watch("m/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        s.watch("m/b", None).await.unwrap();
        s.watch("fence", None).await.unwrap();
        for id in 0..4 {
            assert_eq!(next_resp(&mut s).await, Resp::created(id, now));
        }

        let ra = put(&mut c, "m/a", "1").await;
        let rb = put(&mut c, "m/b", "1").await;
        let rc = put(&mut c, "m/c", "1").await;
        let rf = put(&mut c, "fence", "x").await;
        let got = collect_events(&mut s, 6).await;
        assert_eq!(events_of(&got, 3), [format!("PUT fence=x @{rf}")]);
        assert_eq!(events_of(&got, 0), [format!("PUT m/a=1 @{ra}")]);
        assert_eq!(
            events_of(&got, 1),
            [
                format!("PUT m/a=1 @{ra}"),
                format!("PUT m/b=1 @{rb}"),
                format!("PUT m/c=1 @{rc}"),
            ]
        );
        assert_eq!(events_of(&got, 2), [format!("PUT m/b=1 @{rb}")]);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn an_explicit_watch_id_is_used_and_automatic_ids_skip_ids_in_use() {
    async fn scenario(_: &Server, mut c: Client) {
        let now = current_revision(&mut c).await;
        let mut s = c
            .watch("e", Some(WatchOptions::new().with_watch_id(1)))
            .await
            .unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(1, now));
        s.watch("e", None).await.unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(0, now));
        s.watch("e", None).await.unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp::created(2, now),
            "id 1 is taken"
        );
        s.watch("e", Some(WatchOptions::new().with_watch_id(100)))
            .await
            .unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(100, now));

        let rev = put(&mut c, "e", "v").await;
        let got = collect_events(&mut s, 4).await;
        for id in [0, 1, 2, 100] {
            assert_eq!(
                events_of(&got, id),
                [format!("PUT e=v @{rev}")],
                "watcher {id}"
            );
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_duplicate_watch_id_is_refused_with_a_created_and_canceled_response() {
    async fn scenario(_: &Server, mut c: Client) {
        let now = current_revision(&mut c).await;
        let mut s = c
            .watch("dup", Some(WatchOptions::new().with_watch_id(7)))
            .await
            .unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(7, now));
        s.watch("other", Some(WatchOptions::new().with_watch_id(7)))
            .await
            .unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp {
                created: true,
                canceled: true,
                cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".to_string(),
                ..Resp::new(-1, now)
            }
        );
        // The first watcher 7 is unaffected, the refused one does not exist.
        put(&mut c, "other", "x").await;
        let rev = put(&mut c, "dup", "v").await;
        assert_eq!(next_resp(&mut s).await, Resp::put(7, rev, "dup", "v"));
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn cancel_answers_with_a_canceled_response_and_stops_that_watchers_events() {
    async fn scenario(_: &Server, mut c: Client) {
        let (mut s, a) = watch(&mut c, "c/a", WatchOptions::new()).await;
        let fence = add_watcher(&mut s, "c/fence", WatchOptions::new()).await;
        let rev = put(&mut c, "c/a", "1").await;
        assert_eq!(next_resp(&mut s).await, Resp::put(a, rev, "c/a", "1"));

        s.cancel(a).await.unwrap();
        assert_eq!(
            next_resp(&mut s).await,
            Resp {
                canceled: true,
                ..Resp::new(a, rev)
            },
            "canceled, the watcher's id, the current revision, no reason"
        );
        put(&mut c, "c/a", "2").await;
        let f = put(&mut c, "c/fence", "x").await;
        assert_eq!(
            next_resp(&mut s).await,
            Resp::put(fence, f, "c/fence", "x"),
            "nothing more for the canceled watcher"
        );

        // Canceling an unknown or already canceled id is ignored: the next
        // response is the answer to a progress request sent afterwards.
        s.cancel(a).await.unwrap();
        s.cancel(42).await.unwrap();
        s.request_progress().await.unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::new(-1, f));

        // A new watcher on the stream gets a fresh id; the canceled one's is free.
        s.watch("c/a", None).await.unwrap();
        assert_eq!(next_resp(&mut s).await, Resp::created(2, f));
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn the_created_response_arrives_before_any_event_of_the_watcher() {
    async fn scenario(_: &Server, mut c: Client) {
        for i in 0..20 {
            put(&mut c, &format!("cb/{i:02}"), "v").await;
        }
        let (mut s, busy) = watch(&mut c, "cb/", WatchOptions::new().with_prefix()).await;
        // Live events for `busy` keep arriving while a catch-up watcher with
        // history waiting is created on the same stream.
        let writer = {
            let mut c = c.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    put(&mut c, &format!("cb/live{i:02}"), "v").await;
                }
            })
        };
        s.watch(
            "cb/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(1)
                    .with_watch_id(9),
            ),
        )
        .await
        .unwrap();
        let mut created = false;
        let mut replayed = 0;
        while replayed < 40 {
            let r = next_resp(&mut s).await;
            if r.watch_id == 9 {
                if !created {
                    assert!(
                        r.created && r.events.is_empty(),
                        "watcher 9's first response must be its created response, got {r:?}"
                    );
                    created = true;
                } else {
                    assert!(!r.created && !r.canceled, "{r:?}");
                    replayed += r.events.len();
                }
            } else {
                assert_eq!(r.watch_id, busy, "{r:?}");
            }
        }
        assert_eq!(replayed, 40);
        writer.await.unwrap();
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// One revision, one response
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_txn_writing_several_keys_gives_one_response_with_all_events_in_operation_order() {
    async fn scenario(_: &Server, mut c: Client) {
        put(&mut c, "t/b", "old").await;
        let (mut s, id) = watch(&mut c, "t/", WatchOptions::new().with_prefix()).await;
        let r = c
            .txn(Txn::new().and_then(vec![
                TxnOp::put("t/c", "1", None),
                TxnOp::put("t/a", "1", None),
                TxnOp::delete("t/b", None),
                TxnOp::put("u/outside", "1", None),
                TxnOp::delete("t/missing", None),
                TxnOp::put("t/d", "1", None),
            ]))
            .await
            .unwrap();
        let rev = r.header().unwrap().revision();
        assert_eq!(
            next_resp(&mut s).await,
            Resp::events(
                id,
                rev,
                &[
                    &format!("PUT t/c=1 @{rev}"),
                    &format!("PUT t/a=1 @{rev}"),
                    &format!("DELETE t/b @{rev}"),
                    &format!("PUT t/d=1 @{rev}"),
                ]
            )
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_delete_range_of_many_keys_gives_one_response_with_a_delete_per_key_in_key_order() {
    async fn scenario(_: &Server, mut c: Client) {
        for i in (0..30).rev() {
            put(&mut c, &format!("dr/{i:02}"), "v").await;
        }
        let (mut s, id) = watch(&mut c, "dr/", WatchOptions::new().with_prefix()).await;
        let del = c
            .delete("dr/", Some(DeleteOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(del.deleted(), 30);
        let rev = del.header().unwrap().revision();
        let expected: Vec<String> = (0..30)
            .map(|i| format!("DELETE dr/{i:02} @{rev}"))
            .collect();
        assert_eq!(
            next_resp(&mut s).await,
            Resp {
                events: expected,
                ..Resp::new(id, rev)
            }
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn revoking_a_lease_deletes_its_keys_in_one_revision_reported_in_one_response() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = c.lease_grant(60, None).await.unwrap().id();
        for k in ["lr/c", "lr/a", "lr/b"] {
            put_with_lease(&mut c, k, "v", lease).await;
        }
        put(&mut c, "lr/kept", "v").await;
        let (mut s, id) = watch(
            &mut c,
            "lr/",
            WatchOptions::new().with_prefix().with_prev_key(),
        )
        .await;
        let before = current_revision(&mut c).await;
        c.lease_revoke(lease).await.unwrap();
        let rev = current_revision(&mut c).await;
        assert_eq!(rev, before + 1, "the revocation is one revision");
        let r = next(&mut s).await;
        assert_eq!(
            summary(&r),
            Resp::events(
                id,
                rev,
                &[
                    &format!("DELETE lr/a @{rev}"),
                    &format!("DELETE lr/b @{rev}"),
                    &format!("DELETE lr/c @{rev}"),
                ]
            ),
            "one delete per attached key, in key order"
        );
        for e in r.events() {
            assert_eq!(e.prev_kv().expect("prev_kv").lease(), lease);
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn an_expiring_lease_deletes_its_keys_in_one_revision_reported_in_one_response() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = c.lease_grant(2, None).await.unwrap().id();
        for k in ["le/b", "le/a"] {
            put_with_lease(&mut c, k, "v", lease).await;
        }
        let before = current_revision(&mut c).await;
        let (mut s, id) = watch(&mut c, "le/", WatchOptions::new().with_prefix()).await;
        // The deletion comes once the 2 s lease has expired.
        let rev = before + 1;
        assert_eq!(
            next_resp(&mut s).await,
            Resp::events(
                id,
                rev,
                &[
                    &format!("DELETE le/a @{rev}"),
                    &format!("DELETE le/b @{rev}")
                ]
            ),
            "one delete per attached key, in key order, at the next revision"
        );
        let r = c
            .get("le/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.header().unwrap().revision(), rev);
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Headers and stream lifecycle
// ---------------------------------------------------------------------------

#[tokio::test]
async fn watch_response_headers_name_the_same_cluster_member_and_term_as_kv_responses() {
    async fn scenario(_: &Server, mut c: Client) {
        let kv_header = c
            .put("hd", "v", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .clone();
        let mut s = c.watch("hd", None).await.unwrap();
        let created = next(&mut s).await;
        let rev = put(&mut c, "hd", "w").await;
        let event = next(&mut s).await;
        assert_eq!(event.header().unwrap().revision(), rev);
        for r in [&created, &event] {
            let h = r.header().unwrap();
            assert_eq!(
                (h.cluster_id(), h.member_id(), h.raft_term()),
                (
                    kv_header.cluster_id(),
                    kv_header.member_id(),
                    kv_header.raft_term()
                ),
                "{r:?}"
            );
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn closing_watch_streams_midway_leaves_the_server_watching_on_new_streams() {
    async fn scenario(_: &Server, mut c: Client) {
        for round in 0..30 {
            let (mut s, id) = watch(&mut c, "cl", WatchOptions::new().with_prefix()).await;
            assert_eq!(id, 0, "ids are per stream");
            let rev = put(&mut c, &format!("cl/{round}"), "v").await;
            assert_eq!(
                next_resp(&mut s).await,
                Resp::put(0, rev, &format!("cl/{round}"), "v")
            );
            if round % 2 == 0 {
                // also leave an event undelivered
                put(&mut c, &format!("cl/{round}b"), "v").await;
            }
            drop(s);
        }
        let (mut s, id) = watch(&mut c, "cl/last", WatchOptions::new()).await;
        let rev = put(&mut c, "cl/last", "v").await;
        assert_eq!(next_resp(&mut s).await, Resp::put(id, rev, "cl/last", "v"));
        assert_eq!(c.get("cl/last", None).await.unwrap().kvs().len(), 1);
    }
    on_both(scenario).await;
}

/// The value of gauge `name` in the server's `/metrics` (etcd's Prometheus text).
fn gauge(srv: &Server, name: &str) -> f64 {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}/metrics", srv.endpoint()),
        ])
        .output()
        .expect("run curl (scripts/setup-test-deps installs it)");
    assert!(out.status.success(), "GET /metrics failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gauge {name} in /metrics: {text}"))
}

/// Polls `gauge` until it equals `want`, for at most 10 s.
async fn await_gauge(srv: &Server, name: &str, want: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = gauge(srv, name);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} stayed at {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_and_streams_are_released_when_clients_close_their_streams_mid_way() {
    async fn scenario(srv: &Server, mut c: Client) {
        await_gauge(srv, "etcd_debugging_mvcc_watcher_total", 0.0).await;
        let mut streams = Vec::new();
        for i in 0..20 {
            let (s, _) = watch(
                &mut c,
                &format!("rel/{i}"),
                WatchOptions::new().with_prefix(),
            )
            .await;
            streams.push(s);
        }
        // Some streams have undelivered events when they go.
        for i in 0..10 {
            put(&mut c, &format!("rel/{i}/x"), "v").await;
        }
        await_gauge(srv, "etcd_debugging_mvcc_watcher_total", 20.0).await;
        await_gauge(srv, "etcd_debugging_mvcc_watch_stream_total", 20.0).await;
        drop(streams);
        await_gauge(srv, "etcd_debugging_mvcc_watcher_total", 0.0).await;
        await_gauge(srv, "etcd_debugging_mvcc_watch_stream_total", 0.0).await;
    }
    on_both(scenario).await;
}
