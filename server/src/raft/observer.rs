//! What the state machine tells the layers above after it applied something.
//!
//! The state machine owns applying; some layers above keep in-memory state derived from what
//! was applied (the lessor's leader-only deadlines). They register an [`ApplyObserver`]: it is
//! called after a batch is committed to the store and before any client hears back, so a
//! client that saw its lease grant succeed finds the lease in the leader's lessor.
//!
//! An observer must be quick and must never block on Raft or I/O: it runs on openraft's
//! state-machine task. It must never change the store.

/// A change to the set of granted leases, as applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    Granted { id: i64, ttl: i64 },
    Revoked { id: i64 },
}

/// Receives what the state machine applied. See the module docs for the rules.
pub trait ApplyObserver: Send + Sync + 'static {
    /// Lease grants and revocations of one committed batch, in log order.
    fn leases_changed(&self, changes: &[LeaseChange]);

    /// The whole state was replaced by a snapshot: anything derived from it is stale.
    fn restored(&self);
}
