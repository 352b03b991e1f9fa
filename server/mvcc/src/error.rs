//! Errors of the MVCC store.

/// Everything that can go wrong in the MVCC store.
///
/// The first group are *request errors*: the request was rejected and changed nothing (the
/// `Display` strings are etcd's messages without the `etcdserver: ` prefix, so the API layer
/// can map them to the gRPC status etcd returns). The second group are *store errors*:
/// something is wrong with the disk or the data, and a [`crate::WriteBatch`] that reported one
/// must be dropped (it refuses further work and will not commit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    /// A read or compaction asked for a revision that has been compacted away
    /// (gRPC `OutOfRange` in etcd).
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// A read or compaction asked for a revision newer than the store's (gRPC `OutOfRange`).
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// A put with `ignore_value`/`ignore_lease` on a key that does not exist
    /// (gRPC `InvalidArgument`).
    #[error("key not found")]
    KeyNotFound,
    /// A put attaches a lease that does not exist, or a revoke names one (gRPC `NotFound`).
    #[error("requested lease not found")]
    LeaseNotFound,
    /// A lease grant names an id that is already granted (gRPC `FailedPrecondition`).
    #[error("lease already exists")]
    LeaseExists,
    /// The request is malformed in a way the API layer should have rejected
    /// (e.g. an `InternalRequest` without a request).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// I/O or database failure.
    #[error("storage error: {0}")]
    Storage(String),
    /// Data on disk (or in a snapshot) does not decode.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A store file or snapshot of a layout this build does not read (not damaged: written
    /// by an earlier development build).
    #[error("unsupported store layout: {0}")]
    UnsupportedLayout(String),
}

impl MvccError {
    /// Whether this is a request error (the request was rejected without changing anything)
    /// rather than a failure of the store itself.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            MvccError::Compacted
                | MvccError::FutureRevision
                | MvccError::KeyNotFound
                | MvccError::LeaseNotFound
                | MvccError::LeaseExists
                | MvccError::InvalidRequest(_)
        )
    }
}

fn from_redb(e: redb::Error) -> MvccError {
    match e {
        redb::Error::Corrupted(msg) => MvccError::Corrupt(msg),
        redb::Error::UpgradeRequired(v) => {
            MvccError::Corrupt(format!("database file format {v} needs an upgrade"))
        }
        other => MvccError::Storage(other.to_string()),
    }
}

macro_rules! from_redb_errors {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for MvccError {
            fn from(e: $t) -> MvccError {
                from_redb(e.into())
            }
        })*
    };
}

from_redb_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError,
);

impl From<std::io::Error> for MvccError {
    fn from(e: std::io::Error) -> MvccError {
        MvccError::Storage(e.to_string())
    }
}
