//! `WatchReply`: a watch stream's response as the service builds it, encoded byte for byte as
//! etcd's `WatchResponse`, with its events already encoded.
//!
//! Every watcher that sees an event shares one [`WatchEvent`] handle and one encoding of it
//! (`watch::event`), so a response is a header plus copies of encoded events: no per-watcher
//! clone of keys and values and no per-watcher protobuf encoding. The gRPC route
//! (`transport::watch_route`) sends it as is; the JSON gateway serialises it as `WatchResponse`
//! and the embedded ZooKeeper gateway converts with [`WatchReply::into_response`].
//!
//! The encoding must stay identical to prost's for `WatchResponse` (same fields, same order,
//! defaults omitted); the tests compare the two. The type is never decoded: the server only
//! sends it.

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};
use synod_proto::etcdserverpb::{ResponseHeader, WatchResponse};

use crate::watch::WatchEvent;

/// `WatchResponse`'s field numbers (etcd's rpc.proto).
const HEADER: u32 = 1;
const WATCH_ID: u32 = 2;
const CREATED: u32 = 3;
const CANCELED: u32 = 4;
const COMPACT_REVISION: u32 = 5;
const CANCEL_REASON: u32 = 6;
const FRAGMENT: u32 = 7;
const EVENTS: u32 = 11;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct WatchReply {
    pub header: Option<ResponseHeader>,
    pub watch_id: i64,
    pub created: bool,
    pub canceled: bool,
    pub compact_revision: i64,
    pub cancel_reason: String,
    pub fragment: bool,
    pub events: Vec<WatchEvent>,
}

/// What one event adds to a response: its field key, length prefix and bytes.
pub fn event_field_len(ev: &WatchEvent) -> usize {
    let len = ev.encoded().len();
    encoding::key_len(EVENTS) + encoding::encoded_len_varint(len as u64) + len
}

impl WatchReply {
    /// The same response as a plain message (the events copied out).
    pub fn into_response(self) -> WatchResponse {
        WatchResponse {
            header: self.header,
            watch_id: self.watch_id,
            created: self.created,
            canceled: self.canceled,
            compact_revision: self.compact_revision,
            cancel_reason: self.cancel_reason,
            fragment: self.fragment,
            events: self.events.iter().map(WatchEvent::to_event).collect(),
        }
    }

    /// The encoded length of everything but the events.
    pub fn head_len(&self) -> usize {
        self.header
            .as_ref()
            .map_or(0, |h| encoding::message::encoded_len(HEADER, h))
            + if self.watch_id != 0 {
                encoding::int64::encoded_len(WATCH_ID, &self.watch_id)
            } else {
                0
            }
            + if self.created {
                encoding::bool::encoded_len(CREATED, &self.created)
            } else {
                0
            }
            + if self.canceled {
                encoding::bool::encoded_len(CANCELED, &self.canceled)
            } else {
                0
            }
            + if self.compact_revision != 0 {
                encoding::int64::encoded_len(COMPACT_REVISION, &self.compact_revision)
            } else {
                0
            }
            + if !self.cancel_reason.is_empty() {
                encoding::string::encoded_len(CANCEL_REASON, &self.cancel_reason)
            } else {
                0
            }
            + if self.fragment {
                encoding::bool::encoded_len(FRAGMENT, &self.fragment)
            } else {
                0
            }
    }
}

/// The JSON gateway's form: etcd's `WatchResponse` in grpc-gateway JSON (events copied out).
impl serde::Serialize for WatchReply {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.clone().into_response().serialize(serializer)
    }
}

impl Message for WatchReply {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(h) = &self.header {
            encoding::message::encode(HEADER, h, buf);
        }
        if self.watch_id != 0 {
            encoding::int64::encode(WATCH_ID, &self.watch_id, buf);
        }
        if self.created {
            encoding::bool::encode(CREATED, &self.created, buf);
        }
        if self.canceled {
            encoding::bool::encode(CANCELED, &self.canceled, buf);
        }
        if self.compact_revision != 0 {
            encoding::int64::encode(COMPACT_REVISION, &self.compact_revision, buf);
        }
        if !self.cancel_reason.is_empty() {
            encoding::string::encode(CANCEL_REASON, &self.cancel_reason, buf);
        }
        if self.fragment {
            encoding::bool::encode(FRAGMENT, &self.fragment, buf);
        }
        for ev in &self.events {
            let bytes = ev.encoded();
            encoding::encode_key(EVENTS, WireType::LengthDelimited, buf);
            encoding::encode_varint(bytes.len() as u64, buf);
            buf.put_slice(bytes);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Never decoded by the server; a decoder would read it as `WatchResponse`.
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.head_len() + self.events.iter().map(event_field_len).sum::<usize>()
    }

    fn clear(&mut self) {
        *self = WatchReply::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::SharedEvent;
    use synod_proto::mvccpb::{event::EventType, Event, KeyValue};

    fn event(n: i64, prev: bool) -> Event {
        let kv = |v: &str, rev: i64| KeyValue {
            key: format!("key-{n}").into_bytes(),
            value: v.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: rev,
            version: rev - 1,
            lease: 0x1234,
        };
        Event {
            r#type: if n % 3 == 0 {
                EventType::Delete as i32
            } else {
                EventType::Put as i32
            },
            kv: Some(kv("new value", n + 3)),
            prev_kv: prev.then(|| kv("old", n + 2)),
        }
    }

    fn both(reply: WatchReply) {
        let plain = reply.clone().into_response();
        assert_eq!(reply.encode_to_vec(), plain.encode_to_vec());
        assert_eq!(reply.encoded_len(), plain.encoded_len());
        assert_eq!(
            WatchResponse::decode(reply.encode_to_vec().as_slice()).ok(),
            Some(plain)
        );
    }

    #[test]
    fn encodes_exactly_as_watch_response() {
        both(WatchReply::default());
        both(WatchReply {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 300,
                raft_term: 4,
            }),
            watch_id: 7,
            created: true,
            canceled: true,
            compact_revision: 5,
            cancel_reason: "mvcc: watcher range is empty".into(),
            fragment: true,
            events: Vec::new(),
        });
        let shared: Vec<_> = (1..20)
            .map(|n| SharedEvent::new(event(n, n % 2 == 0)))
            .collect();
        for prev_kv in [false, true] {
            both(WatchReply {
                header: Some(ResponseHeader::default()),
                watch_id: 0,
                events: shared.iter().map(|e| WatchEvent::new(e, prev_kv)).collect(),
                ..Default::default()
            });
        }
    }

    #[test]
    fn negative_ids_encode_as_prost_does() {
        both(WatchReply {
            watch_id: -1,
            compact_revision: -3,
            ..Default::default()
        });
    }
}
