//! Port allocation that avoids collisions between tests running in parallel.
//!
//! Ports are drawn from 15000..32000 — below Linux's ephemeral range
//! (32768..60999 by default), so a port we hand out can't be grabbed in the
//! meantime as the source port of some outgoing connection — skipping the
//! fixed ports etcd's own e2e suite uses (20000..20200). Each candidate is
//! checked by binding 127.0.0.1:port and releasing it, and a process-wide set
//! guarantees a port is handed out at most once per test process.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

const LOW: u16 = 15000;
const HIGH: u16 = 32000;
const E2E_RESERVED: std::ops::Range<u16> = 19990..20210;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that is free now and that no other caller in this
/// process has been (or will be) given.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    let span = u32::from(HIGH - LOW);
    // Start at a random offset (different test processes rarely overlap), then
    // walk the range; bounded by the size of the range.
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = LOW + ((start + i * 7919) % span) as u16; // 7919 is prime, coprime to span
        if E2E_RESERVED.contains(&port) || set.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            set.insert(port);
            return port;
        }
    }
    panic!(
        "free_port: no free port in {LOW}..{HIGH} ({} handed out)",
        set.len()
    );
}
