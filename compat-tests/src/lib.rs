//! Harness shared by the compat tests.
//!
//! Everything here drives **real binaries over real sockets**: the `synod`
//! binary built from `server/`, and upstream etcd 3.4 (`/usr/bin/etcd`,
//! `/usr/bin/etcdctl`, from Debian's `etcd-server` / `etcd-client`) as the
//! reference. Servers listen on 127.0.0.1 only, in a fresh temporary
//! directory, on ports handed out by [`free_port`]. Every process started
//! here is killed when its owner ([`Server`], [`Cluster`]) is dropped.
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
pub mod e2e;
mod ports;
mod rt;
mod server;

#[cfg(test)]
mod selftest;

pub use bins::{etcd_bin, etcdctl_bin, synod_bin, workspace_root};
pub use cluster::Cluster;
pub use ctl::{etcdctl, etcdctl_with_stdin, stdout_of, CTL_TIMEOUT};
pub use ports::free_port;
pub use rt::block_on;
pub use server::{client, client_for, Flavor, MemberSpec, Server, READY_TIMEOUT};
