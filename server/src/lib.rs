//! Synod server library: everything the `synod` binary wires together.
//!
//! Layers, outermost first: `transport` (sockets, TLS, HTTP gateway) -> `api` (gRPC handlers) ->
//! `node` (propose / read barrier / read) -> `raft` (openraft adapters) -> `synod_mvcc` (the
//! state machine on redb). Each layer only calls the one below it.
pub mod api;
pub mod config;
pub mod launch;
pub mod node;
pub mod raft;
pub mod server;
pub mod transport;
