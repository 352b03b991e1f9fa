//! KV API behaviour through the etcd-client crate, as a specification.
//!
//! Every test body is a `scenario` run twice (by the harness's `on_both`):
//! first against upstream etcd 3.4 (which proves the expectation is
//! upstream's behaviour), then against a Synod single member. Each run gets
//! its own fresh server, started and stopped by the test.

use compat_tests::{assert_grpc_error, current_revision, on_both, put, Server};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

fn values(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
        .collect()
}

async fn get_one(c: &mut Client, key: &str) -> Option<KeyValue> {
    let r = c.get(key, None).await.expect("get");
    r.kvs().first().cloned()
}

const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

// ---------------------------------------------------------------------------
// Range
// ---------------------------------------------------------------------------

#[tokio::test]
async fn range_limit_returns_the_first_keys_sets_more_and_counts_the_whole_range() {
    async fn scenario(_: &Server, mut c: Client) {
        for k in ["r/a", "r/b", "r/c", "r/d", "r/e"] {
            put(&mut c, k, "v").await;
        }
        let r = c
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(2)))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["r/a", "r/b"]);
        assert!(r.more(), "more must be set when the limit cut the result");
        assert_eq!(
            r.count(),
            5,
            "count is the number of keys in the whole range"
        );

        let r = c
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(5)))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 5);
        assert!(
            !r.more(),
            "a limit equal to the number of keys leaves more unset"
        );
        assert_eq!(r.count(), 5);

        let r = c
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(0)))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 5, "limit 0 means no limit");
        assert!(!r.more());

        let r = c
            .get("r/", Some(GetOptions::new().with_prefix().with_limit(-1)))
            .await
            .unwrap();
        assert_eq!(r.kvs().len(), 5, "a negative limit means no limit");
        assert!(!r.more());
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_at_an_old_revision_sees_the_store_as_it_was_and_reports_the_current_revision() {
    async fn scenario(_: &Server, mut c: Client) {
        let rev1 = put(&mut c, "h", "one").await;
        let rev2 = put(&mut c, "h", "two").await;
        put(&mut c, "h2", "later").await;
        let del = c.delete("h", None).await.unwrap();
        let now = del.header().unwrap().revision();

        let r = c
            .get("h", Some(GetOptions::new().with_revision(rev1)))
            .await
            .unwrap();
        assert_eq!(values(r.kvs()), ["one"]);
        let kv = &r.kvs()[0];
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (rev1, rev1, 1)
        );
        assert_eq!(
            r.header().unwrap().revision(),
            now,
            "the header carries the current revision"
        );

        let r = c
            .get("h", Some(GetOptions::new().with_revision(rev2)))
            .await
            .unwrap();
        assert_eq!(values(r.kvs()), ["two"]);
        assert_eq!(r.kvs()[0].version(), 2);

        let r = c
            .get(
                "h",
                Some(GetOptions::new().with_prefix().with_revision(rev2)),
            )
            .await
            .unwrap();
        assert_eq!(
            keys(r.kvs()),
            ["h"],
            "h2 did not exist yet at that revision"
        );

        let r = c
            .get("h", Some(GetOptions::new().with_revision(now)))
            .await
            .unwrap();
        assert!(r.kvs().is_empty(), "deleted at the current revision");

        let r = c
            .get("h2", Some(GetOptions::new().with_revision(-5)))
            .await
            .unwrap();
        assert_eq!(
            values(r.kvs()),
            ["later"],
            "a negative revision reads the newest store"
        );

        assert_grpc_error(
            c.get("h", Some(GetOptions::new().with_revision(now + 1)))
                .await,
            "OutOfRange",
            FUTURE_REV,
        );
    }
    on_both(scenario).await;
}

/// Keys s/a, s/b, s/c written so that every sort target orders them
/// differently: key [a,b,c], create [c,a,b], mod [b,c,a], version [b,a,c],
/// value [a,c,b].
async fn put_sort_fixture(c: &mut Client) {
    put(c, "s/c", "2").await;
    put(c, "s/a", "1").await;
    put(c, "s/b", "3").await;
    put(c, "s/c", "2").await;
    put(c, "s/c", "2").await;
    put(c, "s/a", "1").await;
}

async fn sorted(c: &mut Client, target: SortTarget, order: SortOrder) -> Vec<String> {
    let r = c
        .get(
            "s/",
            Some(GetOptions::new().with_prefix().with_sort(target, order)),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 3);
    keys(r.kvs())
}

#[tokio::test]
async fn range_sorts_by_every_target_in_both_orders() {
    async fn scenario(_: &Server, mut c: Client) {
        put_sort_fixture(&mut c).await;
        use SortOrder::{Ascend, Descend};
        use SortTarget::{Create, Key, Mod, Value, Version};
        let cases: [(SortTarget, [&str; 3]); 5] = [
            (Key, ["s/a", "s/b", "s/c"]),
            (Create, ["s/c", "s/a", "s/b"]),
            (Mod, ["s/b", "s/c", "s/a"]),
            (Version, ["s/b", "s/a", "s/c"]),
            (Value, ["s/a", "s/c", "s/b"]),
        ];
        for (target, ascending) in cases {
            assert_eq!(
                sorted(&mut c, target, Ascend).await,
                ascending,
                "{target:?} ascending"
            );
            let mut descending = ascending;
            descending.reverse();
            assert_eq!(
                sorted(&mut c, target, Descend).await,
                descending,
                "{target:?} descending"
            );
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_sort_order_none_with_a_sort_target_other_than_key_sorts_ascending() {
    async fn scenario(_: &Server, mut c: Client) {
        put_sort_fixture(&mut c).await;
        use SortOrder::None;
        use SortTarget::{Create, Key, Mod, Value, Version};
        assert_eq!(sorted(&mut c, Key, None).await, ["s/a", "s/b", "s/c"]);
        assert_eq!(sorted(&mut c, Create, None).await, ["s/c", "s/a", "s/b"]);
        assert_eq!(sorted(&mut c, Mod, None).await, ["s/b", "s/c", "s/a"]);
        assert_eq!(sorted(&mut c, Version, None).await, ["s/b", "s/a", "s/c"]);
        assert_eq!(sorted(&mut c, Value, None).await, ["s/a", "s/c", "s/b"]);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_sorted_with_a_limit_sorts_the_whole_range_before_truncating() {
    async fn scenario(_: &Server, mut c: Client) {
        put_sort_fixture(&mut c).await;
        let r = c
            .get(
                "s/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Mod, SortOrder::Descend)
                        .with_limit(1),
                ),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["s/a"], "the most recently modified key");
        assert!(r.more());
        assert_eq!(r.count(), 3);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_with_sort_order_none_and_a_limit_sorts_only_the_first_limit_plus_one_keys() {
    // Upstream 3.4 lifts the limit for sorting only when the sort order is
    // not NONE (or a min/max filter is set). With order NONE and a target
    // other than KEY it reads limit+1 keys in key order, sorts those
    // ascending by the target, and truncates to the limit.
    async fn scenario(_: &Server, mut c: Client) {
        // versions: q/a=3, q/b=1, q/c=2, q/d=1
        for (k, n) in [("q/a", 3), ("q/b", 1), ("q/c", 2), ("q/d", 1)] {
            for _ in 0..n {
                put(&mut c, k, "v").await;
            }
        }
        let get = |order| {
            GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Version, order)
                .with_limit(2)
        };
        let r = c.get("q/", Some(get(SortOrder::None))).await.unwrap();
        assert_eq!(
            keys(r.kvs()),
            ["q/b", "q/c"],
            "q/a..q/c sorted by version, cut to 2"
        );
        assert!(r.more());
        assert_eq!(r.count(), 4);

        let r = c.get("q/", Some(get(SortOrder::Ascend))).await.unwrap();
        assert_eq!(
            keys(r.kvs()),
            ["q/b", "q/d"],
            "all four sorted by version, cut to 2"
        );
        assert!(r.more());
        assert_eq!(r.count(), 4);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_sorted_by_a_target_keeps_keys_with_equal_values_in_key_order_both_ways() {
    async fn scenario(_: &Server, mut c: Client) {
        for (k, v) in [
            ("t/a", "2"),
            ("t/b", "1"),
            ("t/c", "2"),
            ("t/d", "1"),
            ("t/e", "2"),
        ] {
            put(&mut c, k, v).await;
        }
        let sorted_by_value = async |c: &mut Client, order| {
            let opts = GetOptions::new()
                .with_prefix()
                .with_sort(SortTarget::Value, order);
            keys(c.get("t/", Some(opts)).await.unwrap().kvs())
        };
        assert_eq!(
            sorted_by_value(&mut c, SortOrder::Ascend).await,
            ["t/b", "t/d", "t/a", "t/c", "t/e"]
        );
        assert_eq!(
            sorted_by_value(&mut c, SortOrder::Descend).await,
            ["t/a", "t/c", "t/e", "t/b", "t/d"],
            "descending reverses the value order, not the order of equal values"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_keys_only_returns_keys_and_metadata_without_values() {
    async fn scenario(_: &Server, mut c: Client) {
        let rev = put(&mut c, "ko/a", "value-a").await;
        put(&mut c, "ko/b", "value-b").await;
        let r = c
            .get(
                "ko/",
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["ko/a", "ko/b"]);
        assert_eq!(values(r.kvs()), ["", ""]);
        let a = &r.kvs()[0];
        assert_eq!(
            (a.create_revision(), a.mod_revision(), a.version()),
            (rev, rev, 1)
        );
        assert_eq!(r.count(), 2);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_count_only_returns_the_count_and_no_kvs() {
    async fn scenario(_: &Server, mut c: Client) {
        for k in ["co/a", "co/b", "co/c"] {
            put(&mut c, k, "v").await;
        }
        let r = c
            .get(
                "co/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.count(), 3);
        assert!(!r.more());

        let r = c
            .get(
                "co/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_count_only()
                        .with_limit(1),
                ),
            )
            .await
            .unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.count(), 3, "count ignores the limit");
        assert!(
            !r.more(),
            "with count_only, more stays unset even when count exceeds the limit"
        );

        let r = c
            .get("co/none", Some(GetOptions::new().with_count_only()))
            .await
            .unwrap();
        assert_eq!(r.count(), 0);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_serializable_reads_what_a_linearizable_read_reads_on_a_single_member() {
    async fn scenario(_: &Server, mut c: Client) {
        let rev = put(&mut c, "ser", "v1").await;
        let lin = c.get("ser", None).await.unwrap();
        let ser = c
            .get("ser", Some(GetOptions::new().with_serializable()))
            .await
            .unwrap();
        assert_eq!(values(ser.kvs()), ["v1"]);
        assert_eq!(ser.kvs()[0].mod_revision(), rev);
        assert_eq!(
            ser.header().unwrap().revision(),
            lin.header().unwrap().revision()
        );
        assert_eq!(ser.count(), 1);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_min_and_max_mod_revision_filter_kvs_but_not_the_count() {
    async fn scenario(_: &Server, mut c: Client) {
        let r1 = put(&mut c, "mm/a", "v").await;
        let r2 = put(&mut c, "mm/b", "v").await;
        let r3 = put(&mut c, "mm/c", "v").await;
        let r4 = put(&mut c, "mm/a", "v2").await; // a: create r1, mod r4
        let _ = (r1, r3);

        let r = c
            .get(
                "mm/",
                Some(GetOptions::new().with_prefix().with_min_mod_revision(r3)),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["mm/a", "mm/c"]);
        assert_eq!(r.count(), 3, "count is not affected by the filter");

        let r = c
            .get(
                "mm/",
                Some(GetOptions::new().with_prefix().with_max_mod_revision(r3)),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["mm/b", "mm/c"]);
        assert_eq!(r.count(), 3);

        let r = c
            .get(
                "mm/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_min_mod_revision(r2)
                        .with_max_mod_revision(r2),
                ),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["mm/b"]);

        let r = c
            .get(
                "mm/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_min_mod_revision(r4 + 1),
                ),
            )
            .await
            .unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.count(), 3);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_min_and_max_create_revision_filter_kvs_but_not_the_count() {
    async fn scenario(_: &Server, mut c: Client) {
        let r1 = put(&mut c, "mc/a", "v").await;
        let r2 = put(&mut c, "mc/b", "v").await;
        let r3 = put(&mut c, "mc/c", "v").await;
        put(&mut c, "mc/a", "v2").await; // a: create r1, mod r4

        let r = c
            .get(
                "mc/",
                Some(GetOptions::new().with_prefix().with_min_create_revision(r2)),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["mc/b", "mc/c"]);
        assert_eq!(r.count(), 3, "count is not affected by the filter");

        let r = c
            .get(
                "mc/",
                Some(GetOptions::new().with_prefix().with_max_create_revision(r2)),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["mc/a", "mc/b"]);

        let r = c
            .get(
                "mc/",
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_min_create_revision(r1)
                        .with_max_create_revision(r1),
                ),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["mc/a"]);
        assert_eq!(r.count(), 3);
        let _ = r3;
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_end_nul_byte_means_every_key_from_the_start_key_on() {
    async fn scenario(_: &Server, mut c: Client) {
        for k in ["a", "b", "c", "d"] {
            put(&mut c, k, "v").await;
        }
        let r = c
            .get("b", Some(GetOptions::new().with_range(vec![0u8])))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["b", "c", "d"]);
        let r = c
            .get("b", Some(GetOptions::new().with_from_key()))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["b", "c", "d"]);
        // key "\0" and range_end "\0": the whole key space.
        let r = c
            .get(vec![0u8], Some(GetOptions::new().with_range(vec![0u8])))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["a", "b", "c", "d"]);
        assert_eq!(r.count(), 4);
        let r = c
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["a", "b", "c", "d"]);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_end_is_exclusive_and_an_end_not_after_the_key_selects_nothing() {
    async fn scenario(_: &Server, mut c: Client) {
        for k in ["a", "b", "c", "d"] {
            put(&mut c, k, "v").await;
        }
        let r = c
            .get("b", Some(GetOptions::new().with_range("d")))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["b", "c"]);
        let r = c
            .get("b", Some(GetOptions::new().with_range("b")))
            .await
            .unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.count(), 0);
        let r = c
            .get("c", Some(GetOptions::new().with_range("a")))
            .await
            .unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.count(), 0);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_with_prefix_returns_exactly_the_keys_with_that_prefix() {
    async fn scenario(_: &Server, mut c: Client) {
        for k in ["p", "p/", "p/a", "p/b/c", "p0", "q", "o"] {
            put(&mut c, k, "v").await;
        }
        let r = c
            .get("p/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["p/", "p/a", "p/b/c"]);
        assert_eq!(r.count(), 3);
        let r = c
            .get("p", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), ["p", "p/", "p/a", "p/b/c", "p0"]);
        // Prefix of a key ending in 0xff: the end is the next key after the
        // last non-0xff byte.
        put(&mut c, "x\u{7f}", "v").await;
        c.put(b"x\xff".to_vec(), "v", None).await.unwrap();
        c.put(b"x\xff\x01".to_vec(), "v", None).await.unwrap();
        put(&mut c, "y", "v").await;
        let r = c
            .get(b"x\xff".to_vec(), Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let got: Vec<Vec<u8>> = r.kvs().iter().map(|kv| kv.key().to_vec()).collect();
        assert_eq!(got, [b"x\xff".to_vec(), b"x\xff\x01".to_vec()]);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn range_of_a_missing_key_returns_no_kvs_and_count_zero() {
    async fn scenario(_: &Server, mut c: Client) {
        let r = c.get("missing", None).await.unwrap();
        assert!(r.kvs().is_empty());
        assert_eq!(r.count(), 0);
        assert!(!r.more());
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Put
// ---------------------------------------------------------------------------

#[tokio::test]
async fn put_creates_then_updates_a_key_tracking_create_mod_and_version() {
    async fn scenario(_: &Server, mut c: Client) {
        let before = current_revision(&mut c).await;
        let r1 = put(&mut c, "pk", "v1").await;
        assert_eq!(r1, before + 1, "each put increments the revision by one");
        let r2 = put(&mut c, "pk", "v2").await;
        assert_eq!(r2, r1 + 1);
        let kv = get_one(&mut c, "pk").await.unwrap();
        assert_eq!(kv.value(), b"v2");
        assert_eq!(
            (
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease()
            ),
            (r1, r2, 2, 0)
        );

        // Deleting and re-creating restarts version and create revision.
        c.delete("pk", None).await.unwrap();
        let r4 = put(&mut c, "pk", "v3").await;
        let kv = get_one(&mut c, "pk").await.unwrap();
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (r4, r4, 1)
        );

        // Empty values and arbitrary bytes are stored as given.
        c.put(b"bin\x00\xff".to_vec(), b"\x00\x01\xfe".to_vec(), None)
            .await
            .unwrap();
        let kv = c.get(b"bin\x00\xff".to_vec(), None).await.unwrap().kvs()[0].clone();
        assert_eq!(kv.value(), b"\x00\x01\xfe");
        put(&mut c, "empty", "").await;
        assert_eq!(get_one(&mut c, "empty").await.unwrap().value(), b"");
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_prev_kv_returns_the_previous_key_value_if_there_was_one() {
    async fn scenario(_: &Server, mut c: Client) {
        let r = c
            .put("pv", "v1", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        assert!(r.prev_key().is_none(), "no previous value for a new key");
        let rev1 = r.header().unwrap().revision();

        let r = c
            .put("pv", "v2", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        let prev = r.prev_key().expect("prev_kv");
        assert_eq!(prev.key(), b"pv");
        assert_eq!(prev.value(), b"v1");
        assert_eq!(
            (prev.create_revision(), prev.mod_revision(), prev.version()),
            (rev1, rev1, 1)
        );

        let r = c.put("pv", "v3", None).await.unwrap();
        assert!(r.prev_key().is_none(), "prev_kv only when asked for");
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_ignore_value_keeps_the_value_and_bumps_the_version() {
    async fn scenario(_: &Server, mut c: Client) {
        let r1 = put(&mut c, "iv", "kept").await;
        let r = c
            .put(
                "iv",
                "",
                Some(PutOptions::new().with_ignore_value().with_prev_key()),
            )
            .await
            .unwrap();
        let r2 = r.header().unwrap().revision();
        assert_eq!(r2, r1 + 1);
        assert_eq!(r.prev_key().unwrap().value(), b"kept");
        let kv = get_one(&mut c, "iv").await.unwrap();
        assert_eq!(kv.value(), b"kept");
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (r1, r2, 2)
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_ignore_value_fails_on_a_missing_key_or_when_a_value_is_given() {
    async fn scenario(_: &Server, mut c: Client) {
        assert_grpc_error(
            c.put("nokey", "", Some(PutOptions::new().with_ignore_value()))
                .await,
            "InvalidArgument",
            "etcdserver: key not found",
        );
        put(&mut c, "iv2", "v").await;
        assert_grpc_error(
            c.put("iv2", "new", Some(PutOptions::new().with_ignore_value()))
                .await,
            "InvalidArgument",
            "etcdserver: value is provided",
        );
        assert_eq!(
            get_one(&mut c, "iv2").await.unwrap().version(),
            1,
            "failed puts change nothing"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_ignore_lease_keeps_the_lease_and_a_plain_put_detaches_it() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = c.lease_grant(600, None).await.unwrap().id();
        c.put("il", "v1", Some(PutOptions::new().with_lease(lease)))
            .await
            .unwrap();
        assert_eq!(get_one(&mut c, "il").await.unwrap().lease(), lease);

        c.put("il", "v2", Some(PutOptions::new().with_ignore_lease()))
            .await
            .unwrap();
        let kv = get_one(&mut c, "il").await.unwrap();
        assert_eq!((kv.value(), kv.lease()), (&b"v2"[..], lease));

        c.put("il", "v3", None).await.unwrap();
        assert_eq!(get_one(&mut c, "il").await.unwrap().lease(), 0);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_ignore_lease_fails_on_a_missing_key_or_when_a_lease_is_given() {
    async fn scenario(_: &Server, mut c: Client) {
        assert_grpc_error(
            c.put("nokey", "v", Some(PutOptions::new().with_ignore_lease()))
                .await,
            "InvalidArgument",
            "etcdserver: key not found",
        );
        put(&mut c, "il2", "v").await;
        let lease = c.lease_grant(600, None).await.unwrap().id();
        assert_grpc_error(
            c.put(
                "il2",
                "v",
                Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
            )
            .await,
            "InvalidArgument",
            "etcdserver: lease is provided",
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn put_with_an_unknown_lease_fails_with_not_found() {
    async fn scenario(_: &Server, mut c: Client) {
        let before = current_revision(&mut c).await;
        assert_grpc_error(
            c.put("ul", "v", Some(PutOptions::new().with_lease(0x1234_5678)))
                .await,
            "NotFound",
            "etcdserver: requested lease not found",
        );
        assert!(get_one(&mut c, "ul").await.is_none());
        assert_eq!(
            current_revision(&mut c).await,
            before,
            "a failed put does not bump the revision"
        );
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// DeleteRange
// ---------------------------------------------------------------------------

#[tokio::test]
async fn delete_reports_how_many_keys_it_deleted() {
    async fn scenario(_: &Server, mut c: Client) {
        put(&mut c, "d1", "v").await;
        let before = current_revision(&mut c).await;
        let r = c.delete("d1", None).await.unwrap();
        assert_eq!(r.deleted(), 1);
        assert!(r.prev_kvs().is_empty(), "prev_kvs only when asked for");
        assert_eq!(r.header().unwrap().revision(), before + 1);
        assert!(get_one(&mut c, "d1").await.is_none());

        let r = c.delete("d1", None).await.unwrap();
        assert_eq!(r.deleted(), 0);
        assert_eq!(
            r.header().unwrap().revision(),
            before + 1,
            "deleting nothing does not bump the revision"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn delete_with_prev_kv_returns_the_deleted_key_values() {
    async fn scenario(_: &Server, mut c: Client) {
        let ra = put(&mut c, "dp/a", "va").await;
        let rb = put(&mut c, "dp/b", "vb").await;
        let r = c
            .delete(
                "dp/",
                Some(DeleteOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .unwrap();
        assert_eq!(r.deleted(), 2);
        assert_eq!(keys(r.prev_kvs()), ["dp/a", "dp/b"]);
        assert_eq!(values(r.prev_kvs()), ["va", "vb"]);
        assert_eq!(r.prev_kvs()[0].mod_revision(), ra);
        assert_eq!(r.prev_kvs()[1].mod_revision(), rb);
        assert_eq!(
            r.header().unwrap().revision(),
            rb + 1,
            "one revision for the whole delete"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn delete_with_prefix_range_or_from_key_removes_exactly_those_keys() {
    async fn scenario(_: &Server, mut c: Client) {
        for k in ["x", "x/1", "x/2", "x0", "y", "y/1", "z"] {
            put(&mut c, k, "v").await;
        }
        let r = c
            .delete("x/", Some(DeleteOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(r.deleted(), 2);
        let r = c
            .delete("x", Some(DeleteOptions::new().with_range("y/")))
            .await
            .unwrap();
        assert_eq!(r.deleted(), 3, "x, x0 and y");
        let all = c
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(keys(all.kvs()), ["y/1", "z"]);
        let r = c
            .delete("y/1", Some(DeleteOptions::new().with_from_key()))
            .await
            .unwrap();
        assert_eq!(r.deleted(), 2);
        let all = c
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(all.count(), 0);
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Txn
// ---------------------------------------------------------------------------

async fn txn_succeeds(c: &mut Client, cmp: Compare) -> bool {
    c.txn(Txn::new().when(vec![cmp]))
        .await
        .expect("txn")
        .succeeded()
}

#[tokio::test]
async fn txn_compares_every_target_with_every_result() {
    async fn scenario(_: &Server, mut c: Client) {
        let lease = c.lease_grant(600, None).await.unwrap().id();
        let create = put(&mut c, "t", "m").await;
        let modr = c
            .put("t", "m", Some(PutOptions::new().with_lease(lease)))
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        // "t": value "m", version 2, create `create`, mod `modr`, lease `lease`.
        use CompareOp::{Equal as Eq, Greater as Gt, Less as Lt, NotEqual as Ne};
        let cases: Vec<(&str, Compare, bool)> = vec![
            ("version == 2", Compare::version("t", Eq, 2), true),
            ("version != 2", Compare::version("t", Ne, 2), false),
            ("version > 1", Compare::version("t", Gt, 1), true),
            ("version > 2", Compare::version("t", Gt, 2), false),
            ("version < 3", Compare::version("t", Lt, 3), true),
            ("version < 2", Compare::version("t", Lt, 2), false),
            (
                "create == c",
                Compare::create_revision("t", Eq, create),
                true,
            ),
            (
                "create != c",
                Compare::create_revision("t", Ne, create),
                false,
            ),
            (
                "create > c-1",
                Compare::create_revision("t", Gt, create - 1),
                true,
            ),
            (
                "create < c",
                Compare::create_revision("t", Lt, create),
                false,
            ),
            ("mod == m", Compare::mod_revision("t", Eq, modr), true),
            ("mod != m", Compare::mod_revision("t", Ne, modr), false),
            ("mod > m", Compare::mod_revision("t", Gt, modr), false),
            ("mod < m+1", Compare::mod_revision("t", Lt, modr + 1), true),
            ("value == m", Compare::value("t", Eq, "m"), true),
            ("value != m", Compare::value("t", Ne, "m"), false),
            ("value > l", Compare::value("t", Gt, "l"), true),
            ("value > m", Compare::value("t", Gt, "m"), false),
            ("value < n", Compare::value("t", Lt, "n"), true),
            ("value < ma", Compare::value("t", Lt, "ma"), true),
            ("value < m", Compare::value("t", Lt, "m"), false),
            ("lease == L", Compare::lease("t", Eq, lease), true),
            ("lease != L", Compare::lease("t", Ne, lease), false),
            ("lease > 0", Compare::lease("t", Gt, 0), true),
            ("lease < L", Compare::lease("t", Lt, lease), false),
            // A missing key compares as all-zero fields...
            (
                "missing version == 0",
                Compare::version("none", Eq, 0),
                true,
            ),
            (
                "missing create == 0",
                Compare::create_revision("none", Eq, 0),
                true,
            ),
            (
                "missing mod == 0",
                Compare::mod_revision("none", Eq, 0),
                true,
            ),
            ("missing lease == 0", Compare::lease("none", Eq, 0), true),
            (
                "missing version > 0",
                Compare::version("none", Gt, 0),
                false,
            ),
            // ...except that a value compare on a missing key always fails.
            (
                "missing value == \"\"",
                Compare::value("none", Eq, ""),
                false,
            ),
            ("missing value != x", Compare::value("none", Ne, "x"), false),
        ];
        for (name, cmp, expected) in cases {
            assert_eq!(txn_succeeds(&mut c, cmp).await, expected, "compare {name}");
        }
        // All compares must hold.
        let r = c
            .txn(Txn::new().when(vec![
                Compare::version("t", Eq, 2),
                Compare::version("t", Eq, 1),
            ]))
            .await
            .unwrap();
        assert!(!r.succeeded());
        let r = c.txn(Txn::new()).await.unwrap();
        assert!(r.succeeded(), "no compares: success");
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn txn_compare_over_a_range_holds_only_if_it_holds_for_every_key_in_it() {
    async fn scenario(_: &Server, mut c: Client) {
        put(&mut c, "rc/a", "v").await;
        put(&mut c, "rc/b", "v").await;
        put(&mut c, "rc/b", "v").await;
        use CompareOp::{Equal as Eq, Greater as Gt, Less as Lt};
        assert!(txn_succeeds(&mut c, Compare::version("rc/", Gt, 0).with_prefix()).await);
        assert!(!txn_succeeds(&mut c, Compare::version("rc/", Eq, 1).with_prefix()).await);
        assert!(txn_succeeds(&mut c, Compare::version("rc/a", Lt, 2).with_range("rc/b")).await);
        assert!(txn_succeeds(&mut c, Compare::value("rc/", Eq, "v").with_prefix()).await);
        // An empty range behaves like one missing key.
        assert!(txn_succeeds(&mut c, Compare::version("rc/x", Eq, 0).with_prefix()).await);
        assert!(!txn_succeeds(&mut c, Compare::version("rc/x", Gt, 0).with_prefix()).await);
        assert!(!txn_succeeds(&mut c, Compare::value("rc/x", Eq, "v").with_prefix()).await);
        // range_end "\0": every key from rc/b on.
        assert!(
            txn_succeeds(
                &mut c,
                Compare::version("rc/b", Eq, 2).with_range(vec![0u8])
            )
            .await
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn txn_runs_the_success_or_failure_branch_and_returns_one_response_per_op() {
    async fn scenario(_: &Server, mut c: Client) {
        let r0 = put(&mut c, "tx", "old").await;
        let r = c
            .txn(
                Txn::new()
                    .when(vec![Compare::value("tx", CompareOp::Equal, "old")])
                    .and_then(vec![
                        TxnOp::put("tx", "new", Some(PutOptions::new().with_prev_key())),
                        TxnOp::get("tx", None),
                        TxnOp::delete("tx2", None),
                        TxnOp::put("tx3", "x", None),
                    ])
                    .or_else(vec![TxnOp::put("tx", "else", None)]),
            )
            .await
            .unwrap();
        assert!(r.succeeded());
        assert_eq!(
            r.header().unwrap().revision(),
            r0 + 1,
            "one revision for the whole txn"
        );
        let ops = r.op_responses();
        assert_eq!(ops.len(), 4);
        match &ops[0] {
            TxnOpResponse::Put(p) => assert_eq!(p.prev_key().unwrap().value(), b"old"),
            other => panic!("expected a put response, got {other:?}"),
        }
        match &ops[1] {
            TxnOpResponse::Get(g) => {
                assert_eq!(
                    values(g.kvs()),
                    ["new"],
                    "a range in a txn sees the txn's earlier writes"
                );
                assert_eq!(g.kvs()[0].mod_revision(), r0 + 1);
            }
            other => panic!("expected a range response, got {other:?}"),
        }
        match &ops[2] {
            TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 0),
            other => panic!("expected a delete response, got {other:?}"),
        }
        assert!(matches!(ops[3], TxnOpResponse::Put(_)));
        assert_eq!(get_one(&mut c, "tx3").await.unwrap().mod_revision(), r0 + 1);

        let r = c
            .txn(
                Txn::new()
                    .when(vec![Compare::value("tx", CompareOp::Equal, "old")])
                    .and_then(vec![TxnOp::put("tx", "then", None)])
                    .or_else(vec![TxnOp::put("tx", "else", None), TxnOp::get("tx", None)]),
            )
            .await
            .unwrap();
        assert!(!r.succeeded());
        assert_eq!(r.op_responses().len(), 2);
        assert_eq!(get_one(&mut c, "tx").await.unwrap().value(), b"else");

        // A txn that writes nothing does not bump the revision.
        let now = current_revision(&mut c).await;
        let r = c
            .txn(Txn::new().and_then(vec![TxnOp::get("tx", None)]))
            .await
            .unwrap();
        assert_eq!(r.header().unwrap().revision(), now);
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn txn_nested_txn_compares_are_evaluated_before_any_op_of_the_outer_txn_runs() {
    async fn scenario(_: &Server, mut c: Client) {
        let inner = Txn::new()
            .when(vec![Compare::version("n", CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put("seen", "n-absent", None)])
            .or_else(vec![TxnOp::put("seen", "n-present", None)]);
        let r = c
            .txn(Txn::new().and_then(vec![TxnOp::put("n", "1", None), TxnOp::txn(inner)]))
            .await
            .unwrap();
        assert!(r.succeeded());
        assert_eq!(get_one(&mut c, "seen").await.unwrap().value(), b"n-absent");
        let ops = r.op_responses();
        match &ops[1] {
            TxnOpResponse::Txn(t) => {
                assert!(t.succeeded());
                assert_eq!(t.op_responses().len(), 1);
            }
            other => panic!("expected a txn response, got {other:?}"),
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn txn_writing_a_key_twice_fails_with_duplicate_key() {
    async fn scenario(_: &Server, mut c: Client) {
        const DUP: &str = "etcdserver: duplicate key given in txn request";
        assert_grpc_error(
            c.txn(Txn::new().and_then(vec![
                TxnOp::put("dk", "1", None),
                TxnOp::put("dk", "2", None),
            ]))
            .await,
            "InvalidArgument",
            DUP,
        );
        assert_grpc_error(
            c.txn(Txn::new().and_then(vec![
                TxnOp::delete("dk", Some(DeleteOptions::new().with_prefix())),
                TxnOp::put("dk/x", "2", None),
            ]))
            .await,
            "InvalidArgument",
            DUP,
        );
        assert_grpc_error(
            c.txn(Txn::new().and_then(vec![
                TxnOp::put("dk", "1", None),
                TxnOp::txn(Txn::new().and_then(vec![TxnOp::put("dk", "2", None)])),
            ]))
            .await,
            "InvalidArgument",
            DUP,
        );
        // The two branches may write the same key; so may two deletes.
        c.txn(
            Txn::new()
                .and_then(vec![TxnOp::put("dk", "then", None)])
                .or_else(vec![TxnOp::put("dk", "else", None)]),
        )
        .await
        .unwrap();
        c.txn(Txn::new().and_then(vec![TxnOp::delete("dk", None), TxnOp::delete("dk", None)]))
            .await
            .unwrap();
        c.txn(Txn::new().and_then(vec![TxnOp::get("dk", None), TxnOp::put("dk", "x", None)]))
            .await
            .unwrap();
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn txn_with_more_than_128_operations_fails_with_too_many_operations() {
    async fn scenario(_: &Server, mut c: Client) {
        const TOO_MANY: &str = "etcdserver: too many operations in txn request";
        let puts = |n: usize| {
            (0..n)
                .map(|i| TxnOp::put(format!("many/{i:03}"), "v", None))
                .collect::<Vec<_>>()
        };
        let r = c.txn(Txn::new().and_then(puts(128))).await.unwrap();
        assert_eq!(r.op_responses().len(), 128, "128 operations are allowed");
        assert_grpc_error(
            c.txn(Txn::new().and_then(puts(129))).await,
            "InvalidArgument",
            TOO_MANY,
        );
        assert_grpc_error(
            c.txn(Txn::new().or_else(puts(129))).await,
            "InvalidArgument",
            TOO_MANY,
        );
        let cmps: Vec<Compare> = (0..129)
            .map(|_| Compare::version("many/000", CompareOp::Equal, 1))
            .collect();
        assert_grpc_error(
            c.txn(Txn::new().when(cmps)).await,
            "InvalidArgument",
            TOO_MANY,
        );
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Compact
// ---------------------------------------------------------------------------

#[tokio::test]
async fn compact_discards_history_before_the_revision_and_rejects_compacted_or_future_revisions() {
    async fn scenario(_: &Server, mut c: Client) {
        let mut revs = Vec::new();
        for i in 0..5 {
            revs.push(put(&mut c, "ck", &format!("v{i}")).await);
        }
        let now = *revs.last().unwrap();
        let at = revs[2];
        let r = c
            .compact(at, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        assert_eq!(
            r.header().unwrap().revision(),
            now,
            "compaction does not create a revision"
        );

        assert_grpc_error(
            c.get("ck", Some(GetOptions::new().with_revision(at - 1)))
                .await,
            "OutOfRange",
            COMPACTED,
        );
        let r = c
            .get("ck", Some(GetOptions::new().with_revision(at)))
            .await
            .unwrap();
        assert_eq!(
            values(r.kvs()),
            ["v2"],
            "the compaction revision itself stays readable"
        );
        let r = c.get("ck", None).await.unwrap();
        assert_eq!(values(r.kvs()), ["v4"]);
        assert_eq!(r.kvs()[0].version(), 5, "versions survive compaction");
        assert_eq!(r.kvs()[0].create_revision(), revs[0]);

        assert_grpc_error(
            c.get("ck", Some(GetOptions::new().with_revision(now + 1)))
                .await,
            "OutOfRange",
            FUTURE_REV,
        );
        assert_grpc_error(c.compact(at, None).await, "OutOfRange", COMPACTED);
        assert_grpc_error(c.compact(at - 1, None).await, "OutOfRange", COMPACTED);
        assert_grpc_error(c.compact(now + 1, None).await, "OutOfRange", FUTURE_REV);

        // Non-physical compaction up to the current revision.
        c.compact(now, None).await.unwrap();
        assert_grpc_error(
            c.get("ck", Some(GetOptions::new().with_revision(now - 1)))
                .await,
            "OutOfRange",
            COMPACTED,
        );
        let r = c
            .txn(Txn::new().and_then(vec![TxnOp::get(
                "ck",
                Some(GetOptions::new().with_revision(at)),
            )]))
            .await;
        assert_grpc_error(r, "OutOfRange", COMPACTED);
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Invalid requests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_key_is_rejected_with_key_not_provided() {
    async fn scenario(_: &Server, mut c: Client) {
        assert_grpc_error(
            c.put("", "v", None).await,
            "InvalidArgument",
            KEY_NOT_PROVIDED,
        );
        assert_grpc_error(c.get("", None).await, "InvalidArgument", KEY_NOT_PROVIDED);
        assert_grpc_error(
            c.get("", Some(GetOptions::new().with_range("z"))).await,
            "InvalidArgument",
            KEY_NOT_PROVIDED,
        );
        assert_grpc_error(
            c.delete("", None).await,
            "InvalidArgument",
            KEY_NOT_PROVIDED,
        );
        assert_grpc_error(
            c.txn(Txn::new().when(vec![Compare::version("", CompareOp::Equal, 0)]))
                .await,
            "InvalidArgument",
            KEY_NOT_PROVIDED,
        );
        assert_grpc_error(
            c.txn(Txn::new().or_else(vec![TxnOp::put("", "v", None)]))
                .await,
            "InvalidArgument",
            KEY_NOT_PROVIDED,
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_request_over_the_grpc_limit_is_rejected_with_resource_exhausted() {
    async fn scenario(_: &Server, mut c: Client) {
        // key "big" + 2 MiB value = a 2097162-byte PutRequest; the server
        // accepts messages of max-request-bytes (1.5 MiB) + 512 KiB.
        let value = vec![b'x'; 2 * 1024 * 1024];
        assert_grpc_error(
            c.put("big", value, None).await,
            "ResourceExhausted",
            "grpc: received message larger than max (2097162 vs. 2097152)",
        );
        assert!(get_one(&mut c, "big").await.is_none());
        put(&mut c, "after", "still serving").await;
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn a_put_over_max_request_bytes_is_rejected_with_request_too_large() {
    async fn scenario(_: &Server, mut c: Client) {
        // Over 1.5 MiB (--max-request-bytes) but under the gRPC limit.
        let value = vec![b'y'; 1024 * 1024 + 512 * 1024 + 1024];
        assert_grpc_error(
            c.put("large", value, None).await,
            "InvalidArgument",
            "etcdserver: request is too large",
        );
        assert!(get_one(&mut c, "large").await.is_none());
        // A 1 MiB value is fine.
        c.put("large", vec![b'z'; 1024 * 1024], None).await.unwrap();
        assert_eq!(
            get_one(&mut c, "large").await.unwrap().value().len(),
            1024 * 1024
        );
    }
    on_both(scenario).await;
}

// ---------------------------------------------------------------------------
// Headers, Status, MemberList
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_response_header_names_the_cluster_member_revision_and_term() {
    async fn scenario(_: &Server, mut c: Client) {
        let start = current_revision(&mut c).await;
        let mut headers = Vec::new();
        let h = c
            .put("hk", "v", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .clone();
        assert_eq!(h.revision(), start + 1);
        headers.push(h);
        let h = c.get("hk", None).await.unwrap().header().unwrap().clone();
        assert_eq!(h.revision(), start + 1);
        headers.push(h);
        let h = c
            .txn(Txn::new().and_then(vec![TxnOp::put("hk", "w", None)]))
            .await
            .unwrap()
            .header()
            .unwrap()
            .clone();
        assert_eq!(h.revision(), start + 2);
        headers.push(h);
        let h = c
            .delete("hk", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .clone();
        assert_eq!(h.revision(), start + 3);
        headers.push(h);
        let h = c
            .compact(start + 1, None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .clone();
        assert_eq!(h.revision(), start + 3);
        headers.push(h);
        let status = c.status().await.unwrap();
        headers.push(status.header().unwrap().clone());
        let members = c.member_list().await.unwrap();
        headers.push(members.header().unwrap().clone());

        let first = headers[0].clone();
        assert_ne!(first.cluster_id(), 0);
        assert_ne!(first.member_id(), 0);
        assert!(first.raft_term() >= 1);
        for h in &headers {
            assert_eq!(h.cluster_id(), first.cluster_id(), "{h:?}");
            assert_eq!(h.member_id(), first.member_id(), "{h:?}");
            assert_eq!(h.raft_term(), first.raft_term(), "{h:?}");
        }
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn txn_op_responses_carry_their_own_revision_but_zero_ids() {
    async fn scenario(_: &Server, mut c: Client) {
        let start = current_revision(&mut c).await;
        let r = c
            .txn(Txn::new().and_then(vec![
                TxnOp::put("nh", "v", None),
                TxnOp::get("nh", None),
                TxnOp::delete("nh-other", None),
                TxnOp::txn(Txn::new()),
            ]))
            .await
            .unwrap();
        let ops = r.op_responses();
        let hdr = |op: &TxnOpResponse| match op {
            TxnOpResponse::Put(p) => p.header().cloned(),
            TxnOpResponse::Get(g) => g.header().cloned(),
            TxnOpResponse::Delete(d) => d.header().cloned(),
            TxnOpResponse::Txn(t) => t.header().cloned(),
        };
        let got: Vec<(u64, u64, i64, u64)> = ops
            .iter()
            .map(|op| {
                let h = hdr(op).expect("nested responses have a header");
                (h.cluster_id(), h.member_id(), h.revision(), h.raft_term())
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, 0, start + 1, 0),
                (0, 0, start + 1, 0),
                (0, 0, start + 1, 0),
                (0, 0, 0, 0)
            ],
            "put/range/delete inside a txn: revision set, ids and term zero; nested txn: all zero"
        );
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn status_reports_a_3_4_version_the_member_as_leader_and_a_nonempty_db() {
    async fn scenario(_: &Server, mut c: Client) {
        put(&mut c, "st", "v").await;
        let s = c.status().await.unwrap();
        let version = s.version().to_string();
        let parts: Vec<&str> = version.split('.').collect();
        assert!(
            parts.len() == 3
                && parts[0] == "3"
                && parts[1] == "4"
                && parts[2].parse::<u32>().is_ok(),
            "version must look like 3.4.N, got {version:?}"
        );
        let member_id = s.header().unwrap().member_id();
        assert_ne!(member_id, 0);
        assert_eq!(s.leader(), member_id, "a single member leads itself");
        assert!(s.db_size() > 0);
        assert!(s.raft_used_db_size() > 0 && s.raft_used_db_size() <= s.db_size());
        assert!(s.raft_term() >= 1);
        assert!(s.raft_index() >= 1);
        assert!(!s.is_learner());
        assert!(s.errors().is_empty());
    }
    on_both(scenario).await;
}

#[tokio::test]
async fn member_list_of_a_single_member_names_it_with_its_urls() {
    async fn scenario(srv: &Server, mut c: Client) {
        let r = c.member_list().await.unwrap();
        let members = r.members();
        assert_eq!(members.len(), 1);
        let m = &members[0];
        assert_eq!(m.id(), r.header().unwrap().member_id());
        assert_eq!(m.name(), srv.name);
        assert_eq!(m.peer_urls(), std::slice::from_ref(&srv.peer_url));
        assert_eq!(m.client_urls(), std::slice::from_ref(&srv.client_url));
        assert!(!m.is_learner());
    }
    on_both(scenario).await;
}
