//! Watches: the hub that delivers applied events to watchers, and internal subscriptions.
//!
//! `hub.rs` owns every watcher of this member (synced ones fed by the state machine, unsynced
//! ones caught up from the store's history). The gRPC Watch service (`api::watch`) and the
//! services that wait for changes themselves (election, lock) are its clients; this module
//! never speaks gRPC and never writes the store.

mod event;
mod hub;
mod sink;

pub use event::{SharedEvent, WatchEvent};

pub use hub::{Delivery, WatchHub, WatchSpec, WatcherKey};
pub use sink::{sink, Sink, SinkReceiver};

/// One watcher with a queue of its own, for code inside the server that waits for changes
/// (the election and lock services). Dropping it removes the watcher.
pub struct Subscription {
    hub: WatchHub,
    key: WatcherKey,
    created_at: i64,
    rx: SinkReceiver,
}

impl WatchHub {
    /// Watches `spec` on a queue of its own.
    pub fn subscribe(&self, spec: WatchSpec) -> Subscription {
        let (sink, rx) = sink();
        let (key, created_at) = self.add(&sink, spec);
        Subscription {
            hub: self.clone(),
            key,
            created_at,
            rx,
        }
    }
}

impl Subscription {
    /// The next delivery; `None` only if the hub dropped the watcher's queue.
    pub async fn next(&mut self) -> Option<Delivery> {
        let d = self.rx.recv().await;
        self.hub.drained();
        d
    }

    /// The revision the watcher was created at (the hub's last published revision).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.key);
    }
}
