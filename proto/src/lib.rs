//! `synod-proto` owns Synod's wire format, and nothing else.
//!
//! * The etcd v3 client API — packages [`mvccpb`], [`authpb`], [`etcdserverpb`],
//!   [`v3electionpb`] and [`v3lockpb`] — generated from hand-written `.proto` files under
//!   `protos/` whose packages, services, methods, messages, field names, numbers, types,
//!   enum values and oneofs are identical to upstream etcd's, so any etcd client can talk to
//!   Synod unchanged. `tests/wire.rs` checks this against etcd's own protos.
//! * Synod's internal peer protocol — [`peerpb`] (proto package `synodpeer`).
//!
//! Every module holds the prost messages, the tonic clients and servers, and serde impls
//! (pbjson) matching etcd's grpc-gateway JSON: original proto field names, 64-bit integers
//! as strings, bytes as base64, enums by name, default values omitted.
//!
//! This crate contains no logic: behaviour belongs in the server crates.

#![allow(clippy::all, clippy::pedantic)]
#![allow(missing_docs, rustdoc::bare_urls, rustdoc::invalid_html_tags)]

/// Storage-level types: `KeyValue` and watch `Event` (proto package `mvccpb`).
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Auth storage types: users, roles and permissions (proto package `authpb`).
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// The etcd v3 API: KV, Watch, Lease, Cluster, Maintenance and Auth services
/// (proto package `etcdserverpb`).
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// The Election service (proto package `v3electionpb`).
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

/// The Lock service (proto package `v3lockpb`).
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// Synod's peer-to-peer protocol (proto package `synodpeer`).
pub mod peerpb {
    include!(concat!(env!("OUT_DIR"), "/synodpeer.rs"));
    include!(concat!(env!("OUT_DIR"), "/synodpeer.serde.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of every `.proto` file in this crate
/// (with source info), e.g. for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
