//! Synod server library: everything the `synod` binary wires together.
//!
//! Layers, outermost first: `transport` (sockets, TLS, HTTP gateway) -> `api` (gRPC handlers) ->
//! `node` (propose / read barrier / read) -> `raft` (openraft adapters) -> `synod_mvcc` (the
//! state machine on redb). Each layer only calls the one below it. `lease` sits beside `api`
//! on top of `node`: the leader's in-memory lease deadlines; `raft` reaches it only through the
//! traits it defines (`raft::observer::ApplyObserver`, `raft::peer_service::LeaderDuties`).
pub mod api;
pub mod config;
pub mod launch;
pub mod lease;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod server;
pub mod transport;
pub mod watch;
pub mod zk;
