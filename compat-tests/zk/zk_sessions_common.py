"""Helpers shared by the zk_sessions_*.py scripts (compat-tests/tests/zk_sessions.rs).

Those scripts talk with the Rust test while they run: they print a line
(`CONNECTED ...`, `HOLDING ...`, `WATCHING`) when they reach a point where the
test must act (kill a gateway or a client), and wait for the test's answer on
stdin (`KILLED`). Every wait is bounded.
"""

import select
import sys
import time

from zkcommon import fail


def tell(line):
    """A line for the test (flushed at once)."""
    print(line, flush=True)


def await_line(expected, timeout=60.0):
    """Waits at most `timeout` s for the line `expected` on stdin."""
    r, _, _ = select.select([sys.stdin], [], [], timeout)
    if not r:
        fail("the test did not say %r within %.0f s" % (expected, timeout))
    line = sys.stdin.readline().strip()
    if line != expected:
        fail("the test said %r instead of %r" % (line, expected))


def peer(c):
    """host:port of the server kazoo client `c` is connected to."""
    sock = c._connection._socket
    if sock is None:
        fail("kazoo is not connected")
    host, port = sock.getpeername()[:2]
    return "%s:%d" % (host, port)


def wait_events(ev, n, what, timeout):
    """Like zkcommon.Events.wait with a longer bound: at least n events within timeout s;
    returns them as (type, path) pairs."""
    deadline = time.monotonic() + timeout
    with ev.cond:
        while len(ev.events) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("timed out after %.0f s waiting for %s; events so far: %r"
                     % (timeout, what, ev.events))
            ev.cond.wait(left)
        return [(t, p) for (t, p, _) in ev.events]
