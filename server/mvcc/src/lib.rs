//! Placeholder: the MVCC store is being written.
