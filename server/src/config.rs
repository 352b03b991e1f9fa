//! etcd-compatible command-line flags and ETCD_* variables (being written).
