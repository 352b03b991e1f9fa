//! The jute wire format: records (`records.rs`), their decoding with nom (`decode.rs`) and
//! their encoding (`encode.rs`). Pure functions over byte slices: no I/O, no state, never a
//! panic on any input.

pub mod decode;
pub mod encode;
pub mod records;

pub use decode::{decode_connect, decode_request, DecodeError};
pub use encode::{
    encode_connect_request, encode_connect_response, encode_notification, encode_reply,
    encode_request,
};
pub use records::*;
