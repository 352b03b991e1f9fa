//! Harness shared by the compat tests.
//!
//! Everything here drives **real binaries over real sockets**: the `synod`
//! binary built from `server/`, and upstream etcd 3.4 (`/usr/bin/etcd`,
//! `/usr/bin/etcdctl`, from Debian's `etcd-server` / `etcd-client`) as the
//! reference. Servers listen on 127.0.0.1 only, in a fresh temporary
//! directory, on ports handed out by [`free_port`]. Every process started
//! here is killed when its owner ([`Server`], [`Cluster`], [`BgEtcdctl`]) is
//! dropped.
//!
//! Beside servers and etcdctl, the harness holds what several test files
//! share: running a scenario against etcd then Synod ([`on_both`],
//! [`transcript_on_both`]), small client requests ([`put`],
//! [`current_revision`], [`assert_grpc_error`], ...) and the pieces of the
//! differential tests ([`differential`]).
//!
//! The ZooKeeper side ([`zookeeper`]) does the same with upstream ZooKeeper
//! 3.8 (Debian's `zookeeper`) as the reference for Synod's ZooKeeper
//! gateway, driven by zkCli and kazoo.
//!
//! A missing binary is a loud failure (panic with an install hint), never a
//! skip.
//!
//! ```no_run
//! use compat_tests::{etcdctl, Flavor, Server};
//! let srv = Server::start(Flavor::Synod);
//! let out = etcdctl(&[srv.endpoint()], &["put", "foo", "bar"]);
//! assert!(out.status.success());
//! ```

mod bins;
mod cluster;
mod ctl;
pub mod differential;
pub mod e2e;
mod ports;
mod requests;
mod rt;
mod scenario;
mod server;
pub mod zookeeper;

#[cfg(test)]
mod selftest;

pub use bins::{etcd_bin, etcdctl_bin, synod_bin, workspace_root};
pub use cluster::Cluster;
pub use ctl::{canonical_json, etcdctl, etcdctl_with_stdin, stdout_of, BgEtcdctl, CTL_TIMEOUT};
pub use ports::free_port;
pub use requests::{assert_grpc_error, current_revision, put, put_with_lease};
pub use rt::block_on;
pub use scenario::{on_both, on_both_with, transcript_on_both};
pub use server::{client, client_for, Flavor, MemberSpec, Server, READY_TIMEOUT};
pub use zookeeper::{
    assert_kazoo_script_passes, kazoo_script, normalize_zkcli, zk_on_both, zkcli,
    zkcli_transcript_on_both, SynodZk, ZkFlavor, ZkServer, ZkTarget,
};
