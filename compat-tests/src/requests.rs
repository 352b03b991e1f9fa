//! Small etcd-client requests and error checks that the API specification
//! tests (`kv_api`, `lease_api`, `watch_api`) share: writes that must
//! succeed, returning the revision they made, and gRPC errors as
//! (code, message). Each panics with what went wrong when a request that
//! must succeed fails.

use std::fmt::Debug;

use etcd_client::{Client, Error, PutOptions};

/// Puts `key=value` and returns the revision of the put.
pub async fn put(c: &mut Client, key: &str, value: &str) -> i64 {
    c.put(key, value, None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision()
}

/// Puts `key=value` attached to lease `lease` and returns the revision of
/// the put.
pub async fn put_with_lease(c: &mut Client, key: &str, value: &str, lease: i64) -> i64 {
    c.put(key, value, Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease")
        .header()
        .expect("header")
        .revision()
}

/// The store's current revision (the header revision of a read).
pub async fn current_revision(c: &mut Client) -> i64 {
    c.get("any", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

/// The gRPC code (as its name, e.g. "InvalidArgument") and message of an error.
#[track_caller]
fn grpc_error<T: Debug>(r: Result<T, Error>) -> (String, String) {
    match r {
        Ok(v) => panic!("expected a gRPC error, got success: {v:?}"),
        Err(Error::GRpcStatus(st)) => (format!("{:?}", st.code()), st.message().to_string()),
        Err(e) => panic!("expected a gRPC status error, got client error: {e}"),
    }
}

/// `r` must be the gRPC error `code` (its name, e.g. "NotFound") with
/// exactly `message`.
#[track_caller]
pub fn assert_grpc_error<T: Debug>(r: Result<T, Error>, code: &str, message: &str) {
    assert_eq!(grpc_error(r), (code.to_string(), message.to_string()));
}
