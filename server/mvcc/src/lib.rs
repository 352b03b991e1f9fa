//! `synod-mvcc`: Synod's MVCC key-value state machine, persisted in redb.
//!
//! A pure state machine plus storage — it knows nothing of gRPC, tonic or raft. It
//! reproduces etcd 3.4's key-value semantics (`mvcc/` and `etcdserver/apply.go`):
//!
//! * **Revisions.** The store starts at revision 1 with no keys. Every write request that
//!   changes something gets the next main revision; each change inside it a sub revision
//!   0, 1, 2, ... A put always changes; a delete-range that deletes nothing does not; a txn
//!   bumps the revision once iff its chosen branch changed something; compaction never does.
//! * **Reads** ([`ReadView::range`]) support every `RangeRequest` option. Reads at the current
//!   revision walk the key index and fetch each value by revision; older revisions follow
//!   each key's chain of changes.
//!   `count` is the number of keys in the range at that revision — unaffected by `limit` and
//!   by the min/max revision filters (etcd computes it before filtering); `more` says
//!   whether the (filtered, sorted) result was truncated by `limit`. The response header
//!   carries the store's current revision even for reads at older revisions.
//! * **Writes** go through a [`WriteBatch`] — one redb write transaction for a batch of raft
//!   entries — whose [`WriteBatch::apply`] executes an `InternalRequest` (put, delete-range,
//!   txn, compaction) and returns the `InternalResponse` etcd would.
//! * **Compaction** physically deletes unreachable versions right away.
//!
//! The on-disk format is documented in [`layout`].

pub mod layout;

mod error;
mod hash;
mod read;
mod snapshot;
mod store;
mod write;

pub use error::MvccError;
pub use layout::Rev;
pub use read::KeyRange;
pub use store::{LeaseRecord, MvccStore, ReadView, StoreStats};
pub use write::WriteBatch;

/// A main store revision (etcd's `int64` revision).
pub type Revision = i64;

#[cfg(test)]
mod thread_safety {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_can_cross_threads() {
        send_sync::<crate::MvccStore>();
        send_sync::<crate::ReadView>();
        send::<crate::WriteBatch>();
        send_sync::<crate::MvccError>();
    }
}
