//! An event as watchers receive it: shared by every watcher that sees it, and encoded for the
//! wire at most once per form.
//!
//! One put watched by a thousand watchers used to become a thousand copies of its key and value,
//! each encoded by its own stream. Here the state machine's event is wrapped once
//! ([`SharedEvent`]); a watcher's view of it ([`WatchEvent`]) is that handle plus whether the
//! watcher asked for `prev_kv`. The protobuf encoding of each of the two forms (with and without
//! the previous key-value) is computed by the first stream that sends it and reused by all
//! others, so a response is assembled by copying bytes (see `api::watch_reply`).
//!
//! This module never decides who sees an event (that is the hub's `select`) and never speaks
//! gRPC: it only holds an event and its encodings.

use std::sync::{Arc, OnceLock};

use prost::Message;
use synod_proto::mvccpb::{event::EventType, Event, KeyValue};

/// An applied event, as the state machine (or history) reported it, previous key-value included
/// when it was read.
#[derive(Debug)]
pub struct SharedEvent {
    event: Event,
    /// The encoding with `prev_kv` (only when the event has one).
    with_prev: OnceLock<Vec<u8>>,
    /// The encoding without `prev_kv`.
    without_prev: OnceLock<Vec<u8>>,
}

impl SharedEvent {
    pub fn new(event: Event) -> Arc<SharedEvent> {
        Arc::new(SharedEvent {
            event,
            with_prev: OnceLock::new(),
            without_prev: OnceLock::new(),
        })
    }

    pub fn kv(&self) -> Option<&KeyValue> {
        self.event.kv.as_ref()
    }

    pub fn is_put(&self) -> bool {
        self.event.r#type == EventType::Put as i32
    }
}

/// One watcher's view of a shared event: cheap to clone, never copies the key or value.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    shared: Arc<SharedEvent>,
    /// Whether the watcher sees the previous key-value (it asked for it and the event has one).
    prev_kv: bool,
}

impl WatchEvent {
    /// `shared` as a watcher sees it; `prev_kv` is whether that watcher asked for it.
    pub fn new(shared: &Arc<SharedEvent>, prev_kv: bool) -> WatchEvent {
        WatchEvent {
            prev_kv: prev_kv && shared.event.prev_kv.is_some(),
            shared: shared.clone(),
        }
    }

    pub fn kv(&self) -> Option<&KeyValue> {
        self.shared.kv()
    }

    pub fn mod_revision(&self) -> i64 {
        self.kv().map_or(0, |kv| kv.mod_revision)
    }

    pub fn is_put(&self) -> bool {
        self.shared.is_put()
    }

    pub fn is_delete(&self) -> bool {
        self.shared.event.r#type == EventType::Delete as i32
    }

    /// The event as an owned message (for the JSON gateway and in-process subscribers).
    pub fn to_event(&self) -> Event {
        Event {
            r#type: self.shared.event.r#type,
            kv: self.shared.event.kv.clone(),
            prev_kv: if self.prev_kv {
                self.shared.event.prev_kv.clone()
            } else {
                None
            },
        }
    }

    /// The protobuf encoding of [`WatchEvent::to_event`], computed once per shared event and form.
    pub fn encoded(&self) -> &[u8] {
        let cell = if self.prev_kv {
            &self.shared.with_prev
        } else {
            &self.shared.without_prev
        };
        cell.get_or_init(|| self.to_event().encode_to_vec())
    }

    /// Roughly what the event holds in memory: its keys and values (for queue budgets).
    pub fn payload_len(&self) -> usize {
        let kv = |kv: Option<&KeyValue>| kv.map_or(0, |kv| kv.key.len() + kv.value.len());
        kv(self.kv())
            + if self.prev_kv {
                kv(self.shared.event.prev_kv.as_ref())
            } else {
                0
            }
    }
}

impl PartialEq for WatchEvent {
    fn eq(&self, other: &Self) -> bool {
        self.to_event() == other.to_event()
    }
}

impl From<Event> for WatchEvent {
    /// An unshared event, seen with its previous key-value if it has one.
    fn from(event: Event) -> WatchEvent {
        WatchEvent::new(&SharedEvent::new(event), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_with_prev() -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: b"new".to_vec(),
                mod_revision: 3,
                create_revision: 2,
                version: 2,
                ..Default::default()
            }),
            prev_kv: Some(KeyValue {
                key: b"k".to_vec(),
                value: b"old".to_vec(),
                mod_revision: 2,
                create_revision: 2,
                version: 1,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn each_form_encodes_as_the_plain_event_would() {
        let shared = SharedEvent::new(put_with_prev());
        let with = WatchEvent::new(&shared, true);
        let without = WatchEvent::new(&shared, false);
        assert_eq!(with.encoded(), put_with_prev().encode_to_vec().as_slice());
        let mut bare = put_with_prev();
        bare.prev_kv = None;
        assert_eq!(without.encoded(), bare.encode_to_vec().as_slice());
        assert_eq!(without.to_event(), bare);
        assert_eq!(with.payload_len(), 1 + 3 + 1 + 3);
        assert_eq!(without.payload_len(), 1 + 3);
    }

    #[test]
    fn asking_for_prev_kv_of_an_event_without_one_gets_none() {
        let mut ev = put_with_prev();
        ev.prev_kv = None;
        let shared = SharedEvent::new(ev.clone());
        let w = WatchEvent::new(&shared, true);
        assert_eq!(w.to_event(), ev);
        assert_eq!(w.encoded(), ev.encode_to_vec().as_slice());
    }
}
