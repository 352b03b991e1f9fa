//! Locating the binaries under test. Missing binaries panic with an install
//! hint: the project's tests never skip.

use std::path::{Path, PathBuf};

/// The cargo workspace root (`CARGO_MANIFEST_DIR/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compat-tests has a parent directory")
        .to_path_buf()
}

fn from_env_or(var: &str, default: PathBuf, hint: &str) -> PathBuf {
    let (path, origin) = match std::env::var_os(var) {
        Some(v) if !v.is_empty() => (PathBuf::from(v), format!("${var}")),
        _ => (default, format!("default path (set ${var} to override)")),
    };
    if !path.is_file() {
        panic!(
            "required binary not found: {} (from {origin}).\n{hint}",
            path.display()
        );
    }
    path
}

/// The synod server binary: `$SYNOD_BIN`, else
/// `<workspace>/target/release/synod` (respecting `$CARGO_TARGET_DIR`).
pub fn synod_bin() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    };
    from_env_or(
        "SYNOD_BIN",
        target.join("release").join("synod"),
        "build it first: `cargo build --release -p synod` (scripts/test does this and exports SYNOD_BIN)",
    )
}

/// Upstream etcd 3.4 server: `$ETCD_BIN`, else `/usr/bin/etcd`.
pub fn etcd_bin() -> PathBuf {
    from_env_or(
        "ETCD_BIN",
        PathBuf::from("/usr/bin/etcd"),
        "install etcd-server: apt-get install etcd-server (or run scripts/setup-test-deps)",
    )
}

/// Upstream etcdctl 3.4: `$ETCDCTL_BIN`, else `/usr/bin/etcdctl`.
pub fn etcdctl_bin() -> PathBuf {
    from_env_or(
        "ETCDCTL_BIN",
        PathBuf::from("/usr/bin/etcdctl"),
        "install etcd-client: apt-get install etcd-client (or run scripts/setup-test-deps)",
    )
}
