//! etcd 3.4's own end-to-end suite (go.etcd.io/etcd/tests/e2e), run against
//! the synod binary: the suite starts `etcd` from a bin dir in which `etcd`
//! is synod (and `etcdctl` is upstream's), then drives it with etcdctl and
//! curl exactly as it drives etcd.
//!
//! One #[test] per issue's group of upstream tests. Each asserts the exact
//! set of top-level upstream tests that must pass — recorded by running the
//! same group against upstream etcd 3.4.23 (`E2E_TARGET=etcd`), where all of
//! them pass.
//!
//! Needs `$E2E_TEST_BIN` (or `~/.cache/synod/e2e.test`), built by
//! `scripts/setup-test-deps`; `scripts/test` sets everything up.
//!

use compat_tests::e2e::run_e2e;

/// KV, txn, compaction, endpoint and member-list tests over etcdctl and the
/// gRPC gateway (curl), plain and TLS.
const KV_REGEX: &str = "^TestCtlV3(Put(NoTLS|ClientTLS|ClientAutoTLS|PeerTLS|Timeout|ClientTLSFlagByEnv|IgnoreValue)?|Get.*|Del.*|Txn.*|Compact.*|Defrag|Version|EndpointStatus|EndpointHealth|EndpointHashKV|MemberList.*|DialWithHTTPScheme)$|^TestV3Curl(PutGet.*|Txn)$";

/// What upstream etcd 3.4.23 passes for KV_REGEX (48 tests, ~40 s).
const KV_EXPECTED: &[&str] = &[
    "TestCtlV3Compact",
    "TestCtlV3CompactPhysical",
    "TestCtlV3Defrag",
    "TestCtlV3EndpointHealth",
    "TestCtlV3EndpointStatus",
    "TestCtlV3EndpointHashKV",
    "TestCtlV3Put",
    "TestCtlV3PutNoTLS",
    "TestCtlV3PutClientTLS",
    "TestCtlV3PutClientAutoTLS",
    "TestCtlV3PutPeerTLS",
    "TestCtlV3PutTimeout",
    "TestCtlV3PutClientTLSFlagByEnv",
    "TestCtlV3PutIgnoreValue",
    "TestCtlV3Get",
    "TestCtlV3GetNoTLS",
    "TestCtlV3GetClientTLS",
    "TestCtlV3GetClientAutoTLS",
    "TestCtlV3GetPeerTLS",
    "TestCtlV3GetTimeout",
    "TestCtlV3GetQuorum",
    "TestCtlV3GetFormat",
    "TestCtlV3GetRev",
    "TestCtlV3GetKeysOnly",
    "TestCtlV3Del",
    "TestCtlV3DelNoTLS",
    "TestCtlV3DelClientTLS",
    "TestCtlV3DelPeerTLS",
    "TestCtlV3DelTimeout",
    "TestCtlV3GetRevokedCRL",
    "TestCtlV3MemberList",
    "TestCtlV3MemberListNoTLS",
    "TestCtlV3MemberListClientTLS",
    "TestCtlV3MemberListClientAutoTLS",
    "TestCtlV3MemberListPeerTLS",
    "TestCtlV3Version",
    "TestCtlV3DialWithHTTPScheme",
    "TestCtlV3TxnInteractiveSuccess",
    "TestCtlV3TxnInteractiveSuccessNoTLS",
    "TestCtlV3TxnInteractiveSuccessClientTLS",
    "TestCtlV3TxnInteractiveSuccessPeerTLS",
    "TestCtlV3TxnInteractiveFail",
    "TestV3CurlPutGetNoTLS",
    "TestV3CurlPutGetAutoTLS",
    "TestV3CurlPutGetAllTLS",
    "TestV3CurlPutGetPeerTLS",
    "TestV3CurlPutGetClientTLS",
    "TestV3CurlTxn",
];

#[test]
fn etcd_e2e_kv_txn_compact_endpoint_member() {
    assert_eq!(KV_EXPECTED.len(), 48);
    run_e2e(KV_REGEX, KV_EXPECTED);
}

/// Watch, lease, election and lock tests over etcdctl and the gRPC gateway
/// (curl), plus `put --ignore-lease`.
const WATCH_LEASE_REGEX: &str = "^TestCtlV3(Watch.*|Lease.*|Elect|Lock|PutIgnoreLease)$|^TestV3Curl(Watch|Lease.*|Campaign.*|Proclaim.*|Resign.*)$";

/// What upstream etcd 3.4.23 passes for WATCH_LEASE_REGEX (50 tests, ~75 s).
const WATCH_LEASE_EXPECTED: &[&str] = &[
    "TestCtlV3Elect",
    "TestCtlV3PutIgnoreLease",
    "TestCtlV3LeaseGrantTimeToLive",
    "TestCtlV3LeaseGrantTimeToLiveNoTLS",
    "TestCtlV3LeaseGrantTimeToLiveClientTLS",
    "TestCtlV3LeaseGrantTimeToLiveClientAutoTLS",
    "TestCtlV3LeaseGrantTimeToLivePeerTLS",
    "TestCtlV3LeaseGrantLeases",
    "TestCtlV3LeaseGrantLeasesNoTLS",
    "TestCtlV3LeaseGrantLeasesClientTLS",
    "TestCtlV3LeaseGrantLeasesClientAutoTLS",
    "TestCtlV3LeaseGrantLeasesPeerTLS",
    "TestCtlV3LeaseTestTimeToLiveExpired",
    "TestCtlV3LeaseTestTimeToLiveExpiredNoTLS",
    "TestCtlV3LeaseTestTimeToLiveExpiredClientTLS",
    "TestCtlV3LeaseTestTimeToLiveExpiredClientAutoTLS",
    "TestCtlV3LeaseTestTimeToLiveExpiredPeerTLS",
    "TestCtlV3LeaseKeepAlive",
    "TestCtlV3LeaseKeepAliveNoTLS",
    "TestCtlV3LeaseKeepAliveClientTLS",
    "TestCtlV3LeaseKeepAliveClientAutoTLS",
    "TestCtlV3LeaseKeepAlivePeerTLS",
    "TestCtlV3LeaseKeepAliveOnce",
    "TestCtlV3LeaseKeepAliveOnceNoTLS",
    "TestCtlV3LeaseKeepAliveOnceClientTLS",
    "TestCtlV3LeaseKeepAliveOnceClientAutoTLS",
    "TestCtlV3LeaseKeepAliveOncePeerTLS",
    "TestCtlV3LeaseRevoke",
    "TestCtlV3LeaseRevokeNoTLS",
    "TestCtlV3LeaseRevokeClientTLS",
    "TestCtlV3LeaseRevokeClientAutoTLS",
    "TestCtlV3LeaseRevokePeerTLS",
    "TestCtlV3Lock",
    "TestCtlV3Watch",
    "TestCtlV3WatchNoTLS",
    "TestCtlV3WatchClientTLS",
    "TestCtlV3WatchPeerTLS",
    "TestCtlV3WatchTimeout",
    "TestCtlV3WatchInteractive",
    "TestCtlV3WatchInteractiveNoTLS",
    "TestCtlV3WatchInteractiveClientTLS",
    "TestCtlV3WatchInteractivePeerTLS",
    "TestV3CurlLeaseGrantNoTLS",
    "TestV3CurlLeaseRevokeNoTLS",
    "TestV3CurlLeaseLeasesNoTLS",
    "TestV3CurlLeaseKeepAliveNoTLS",
    "TestV3CurlWatch",
    "TestV3CurlCampaignNoTLS",
    "TestV3CurlProclaimMissiongLeaderKeyNoTLS",
    "TestV3CurlResignMissiongLeaderKeyNoTLS",
];

#[test]
fn etcd_e2e_watch_lease_election_lock() {
    assert_eq!(WATCH_LEASE_EXPECTED.len(), 50);
    run_e2e(WATCH_LEASE_REGEX, WATCH_LEASE_EXPECTED);
}
