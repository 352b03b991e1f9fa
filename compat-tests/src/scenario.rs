//! Running one scenario against upstream etcd, then against Synod.
//!
//! This module owns the "on both" discipline of the specification tests:
//! every scenario runs first against upstream etcd 3.4 (which proves the
//! expectation is upstream's behaviour), then against a Synod single member,
//! each on a fresh server started and stopped here. It announces each run on
//! stderr and, when a run fails, names the flavor (and the test) it failed
//! against. For scenarios written as etcdctl sessions it also
//! owns the verdict on a transcript ([`transcript_on_both`]): which side
//! disagrees with the expected one, and where.
//!
//! What a scenario does, and how it records or normalises what it sees,
//! stays with the test file.

use etcd_client::Client;

use crate::server::{client, Flavor, MemberSpec, Server};

/// Runs `scenario` against upstream etcd, then against Synod, each on a fresh
/// single-member server with the harness's default flags, with an
/// etcd-client connected to it.
pub async fn on_both(scenario: impl AsyncFn(&Server, Client)) {
    on_both_with(MemberSpec::new, scenario).await;
}

/// Like [`on_both`], each server started as `spec(flavor)` describes (the
/// same extra flags for both).
pub async fn on_both_with(
    spec: impl Fn(Flavor) -> MemberSpec,
    scenario: impl AsyncFn(&Server, Client),
) {
    for flavor in [Flavor::Etcd, Flavor::Synod] {
        eprintln!("=== scenario against {flavor:?}");
        let srv = Server::start_with(spec(flavor));
        let c = client(&srv).await;
        let label = FailureLabel(flavor);
        scenario(&srv, c).await;
        drop(label);
        drop(srv);
    }
}

/// Runs `scenario` against upstream etcd, then against Synod, each on a fresh
/// single-member server; the transcript it returns for each must be
/// `expected` (leading newlines aside) exactly. On a mismatch the panic says
/// which side is wrong (etcd disagreeing means the test is) and shows the
/// first differing line and both transcripts.
pub fn transcript_on_both(expected: &str, scenario: impl Fn(&Server) -> String) {
    let expected = expected.trim_start_matches('\n');
    for flavor in [Flavor::Etcd, Flavor::Synod] {
        eprintln!("=== scenario against {flavor:?}");
        let srv = Server::start(flavor);
        let label = FailureLabel(flavor);
        let transcript = scenario(&srv);
        drop(label);
        if transcript != expected {
            let what = match flavor {
                Flavor::Etcd => {
                    "upstream etcd disagrees with the expected transcript: the TEST is wrong"
                }
                Flavor::Synod => {
                    "synod disagrees with the expected transcript (which upstream etcd 3.4 matches)"
                }
            };
            panic!("{what}\n{}", diff(expected, &transcript));
        }
    }
}

/// While alive, names the flavor a failing scenario ran against: if the
/// thread is panicking when it drops, it says so on stderr (with the test's
/// name).
struct FailureLabel(Flavor);

impl Drop for FailureLabel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "*** the scenario above FAILED against {:?} (test {})",
                self.0,
                std::thread::current().name().unwrap_or("?")
            );
        }
    }
}

/// A line-by-line comparison that points at the first difference.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(0);
    let mut s = format!("first difference at line {}:\n", first + 1);
    s.push_str(&format!(
        "  expected: {:?}\n  actual:   {:?}\n",
        e.get(first),
        a.get(first)
    ));
    s.push_str("--- expected ---\n");
    s.push_str(expected);
    s.push_str("--- actual ---\n");
    s.push_str(actual);
    s
}
