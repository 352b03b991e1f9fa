//! Self-tests of the harness, against upstream etcd (so they hold whatever
//! state synod is in). Run with `cargo test -p compat-tests --lib`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::*;

#[test]
fn free_ports_are_unique_and_bindable() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let set: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(set.len(), ports.len(), "a port was handed out twice");
    for p in &ports[..20] {
        assert!((15000..32000).contains(p));
        std::net::TcpListener::bind(("127.0.0.1", *p)).expect("handed-out port is bindable");
    }
}

#[test]
fn single_etcd_server_serves_survives_kill9_and_cleans_up() {
    let mut srv = Server::start(Flavor::Etcd);
    assert!(srv.client_url.starts_with("http://127.0.0.1:"));
    assert_eq!(format!("http://{}", srv.endpoint()), srv.client_url);
    let eps = [srv.endpoint()];
    assert_eq!(stdout_of(&etcdctl(&eps, &["put", "k", "v"])), "OK\n");
    assert_eq!(
        stdout_of(&etcdctl(&eps, &["get", "k", "--print-value-only"])),
        "v\n"
    );
    assert!(
        srv.log().contains("harness: starting"),
        "log: {}",
        srv.log()
    );
    assert!(srv.data_dir.is_dir());

    let pid = srv.pid().expect("running");
    srv.kill9();
    assert!(!srv.is_running());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "killed process was reaped"
    );
    let out = etcdctl(&eps, &["--dial-timeout=1s", "get", "k"]);
    assert!(!out.status.success(), "a killed server must not answer");

    srv.restart();
    assert_eq!(
        stdout_of(&etcdctl(&eps, &["get", "k", "--print-value-only"])),
        "v\n",
        "data survives restart"
    );
    assert!(srv.log().contains("killed with SIGKILL"));

    let (dir, pid) = (
        srv.data_dir.parent().unwrap().to_path_buf(),
        srv.pid().unwrap(),
    );
    drop(srv);
    assert!(!dir.exists(), "temp dir removed on drop");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process killed on drop"
    );
}

#[test]
fn stdin_is_fed_to_etcdctl() {
    let srv = Server::start(Flavor::Etcd);
    let out = etcdctl_with_stdin(&[srv.endpoint()], &["txn"], "\nput a 1\n\n\n");
    assert_eq!(stdout_of(&out), "SUCCESS\n\nOK\n");
}

#[test]
fn extra_args_override_defaults_and_env_is_passed() {
    let spec = MemberSpec::new(Flavor::Etcd)
        .arg("--logger=capnslog")
        .env("ETCD_SNAPSHOT_COUNT", "1234");
    let srv = Server::start_with(spec);
    // the default --logger was dropped, not passed twice
    assert_eq!(
        srv.args
            .iter()
            .filter(|a| a.starts_with("--logger"))
            .count(),
        1,
        "{:?}",
        srv.args
    );
    assert!(srv.args.contains(&"--logger=capnslog".to_string()));
    let log = srv.log();
    assert!(
        log.contains("I | etcdmain:"),
        "capnslog format in use: {}",
        srv.log_tail(20)
    );
    assert!(
        log.contains("ETCD_SNAPSHOT_COUNT=1234"),
        "env var reached the server: {}",
        srv.log_tail(20)
    );
}

#[test]
#[should_panic(expected = "exited during startup")]
fn a_server_that_cannot_start_fails_loudly_with_its_log() {
    Server::start_with(MemberSpec::new(Flavor::Etcd).arg("--no-such-flag"));
}

#[tokio::test]
async fn async_client_from_inside_a_runtime() {
    // Server::start blocks; it must also work from within a tokio runtime.
    let srv = Server::start(Flavor::Etcd);
    let mut c = client(&srv).await;
    c.put("x", "y", None).await.unwrap();
    let r = c.get("x", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"y");
}

#[test]
fn three_member_etcd_cluster_elects_and_reelects_a_leader() {
    let mut cluster = Cluster::start(Flavor::Etcd, 3);
    assert_eq!(cluster.endpoints().len(), 3);
    let out = stdout_of(&etcdctl(&cluster.endpoints(), &["member", "list"]));
    assert_eq!(out.lines().count(), 3, "{out}");
    let leader = cluster.leader_index().expect("a leader after start");

    stdout_of(&etcdctl(&cluster.endpoints(), &["put", "k", "v"]));
    cluster.members[leader].kill9();
    // bounded wait for a new leader among the two survivors
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut new_leader = None;
    for _ in 0..300 {
        new_leader = cluster.leader_index();
        if new_leader.is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let new_leader = new_leader.expect("a new leader after killing the old one");
    assert_ne!(new_leader, leader);
    cluster.members[leader].restart();
    let ep = [cluster.members[leader].endpoint()];
    assert_eq!(
        stdout_of(&etcdctl(&ep, &["get", "k", "--print-value-only"])),
        "v\n"
    );
}
