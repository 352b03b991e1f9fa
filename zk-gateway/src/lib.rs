//! Synod's ZooKeeper gateway: the ZooKeeper wire protocol (3.8) served over the etcd v3 API.
//!
//! Layers, top down: `connection` (framing, handshake, request loop) and `four_letter` ->
//! `handlers` (one per opcode group; upstream's checks and error codes) -> `txn` (write plans:
//! one guarded etcd Txn per ZooKeeper write or multi), `watches` (one etcd watch per gateway,
//! fanned out), `session` (sessions on leases) -> `store` (znodes over `backend`, the etcd v3
//! API seam) with `layout` (keys and records) and `znode` (Stat). `jute` is the wire codec and
//! `proto` the protocol's numbers. The gateway knows nothing of Synod's internals: it runs in
//! front of any etcd v3 through `backend::Remote`, or embedded in `synod` through an in-process
//! `Backend`.

pub mod acl;
pub mod backend;
pub mod connection;
pub mod four_letter;
pub mod handlers;
pub mod jute;
pub mod layout;
pub mod path;
pub mod proto;
pub mod server;
pub mod session;
pub mod store;
pub mod txn;
pub mod watches;
pub mod znode;

pub use backend::{Backend, Remote, SharedBackend};
pub use server::{bind, serve, Config, GatewayError};
