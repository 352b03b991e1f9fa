//! How the Raft layer encodes what it keeps on disk (log entries, vote, applied position,
//! membership): postcard over openraft's serde types, with errors as `io::Error` because that
//! is what openraft's storage traits speak. Decoding failures are `InvalidData`, never panics.

use std::io;

pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(io_err)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> io::Result<T> {
    postcard::from_bytes(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}
