//! Leases: the in-memory part of etcd's lessor (`lease/lessor.go`).
//!
//! What a lease *is* (its id and granted TTL, the keys attached to it, its last checkpointed
//! remaining TTL) is replicated state and lives in the MVCC store, changed only by
//! `LeaseGrant` / `LeaseRevoke` / `LeaseCheckpoint` commands applied through Raft. What is
//! *not* replicated is when a lease expires: like etcd, the current leader's in-memory
//! deadlines decide ([`lessor::Lessor`]). It renews them on keep-alives, checkpoints renewals
//! through Raft so that every other member keeps an estimate (a shadow) a new leader resumes
//! from, and when a deadline passes it proposes a `LeaseRevoke` through Raft like any client
//! would — so every member deletes the lease's keys at the same revision.
//!
//! This module owns the deadlines, the shadows and the decision to expire. It must never change the store
//! other than by proposing commands through `Node`, and must never answer a client itself
//! (that is `api::lease`'s job).

mod deadlines;
pub mod lessor;

pub use deadlines::min_lease_ttl;
pub use lessor::{Lessor, MAX_LEASE_TTL};
