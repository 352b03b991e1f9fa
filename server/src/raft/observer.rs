//! What the state machine tells the layers above after it applied something.
//!
//! The state machine owns applying; some layers above keep in-memory state derived from what
//! was applied (the lessor's lease deadlines, the watch hub's synced watchers). They
//! register an [`ApplyObserver`]: it is called after a batch is committed to the store and
//! before any client hears back, so a client that saw its lease grant succeed finds the lease
//! in the leader's lessor, and a watcher gets the event of a put before the put's answer.
//!
//! An observer must be quick and must never block on Raft or I/O: it runs on openraft's
//! state-machine task. It must never change the store.

use synod_proto::mvccpb::Event;

/// A change to the set of granted leases, as applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    Granted {
        id: i64,
        ttl: i64,
    },
    Revoked {
        id: i64,
    },
    /// The leader's checkpoint of a granted lease: `remaining_ttl` seconds were left when it
    /// proposed it (`<= 0`: unset, the full TTL). Reported only for leases the store holds.
    Checkpointed {
        id: i64,
        remaining_ttl: i64,
    },
}

/// Receives what the state machine applied. See the module docs for the rules. Every method
/// has a do-nothing default: an observer implements what it derives state from.
pub trait ApplyObserver: Send + Sync + 'static {
    /// Lease grants, revocations and checkpoints of one committed batch, in log order.
    fn leases_changed(&self, _changes: &[LeaseChange]) {}

    /// Whether the events of the next batch must carry `prev_kv` (asked before each batch;
    /// filling it costs a read of every overwritten or deleted value).
    fn wants_prev_kv(&self) -> bool {
        false
    }

    /// The key-value events of one committed batch, in revision order, and the store's
    /// revision after it. Called for every batch, also one without events. `with_prev_kv`:
    /// whether the events carry `prev_kv` (an overwrite or deletion has none otherwise).
    fn events_applied(&self, _revision: i64, _events: &[Event], _with_prev_kv: bool) {}

    /// The whole state was replaced by a snapshot: anything derived from it is stale.
    /// `revision` is the store's revision after the install.
    fn restored(&self, _revision: i64) {}
}
