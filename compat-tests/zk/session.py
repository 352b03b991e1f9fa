"""Sessions: timeout negotiation (clamped to 2..20 ticks of 2000 ms), resuming
a session by id and password from another connection (its ephemerals
intact), a wrong password expiring the attempt, an abandoned session
expiring and taking its ephemerals with it; ruok and envi (kazoo's
server_version) on the client port."""

import logging
import re
import subprocess
import sys
import time

from kazoo.client import KazooClient

from zkcommon import HOSTS, WAIT, Events, check, client, close, eq, fail, main

# A client in another process that creates an ephemeral, prints its session
# id and password, and dies without closing the session.
ORPHAN = r"""
import os, sys
from kazoo.client import KazooClient
c = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[3]))
c.start(timeout=10)
c.create(sys.argv[2], b"orphan", ephemeral=True)
sid, passwd = c.client_id
print("%d %s" % (sid, passwd.hex()), flush=True)
os._exit(0)
"""


def orphan(path, timeout):
    out = subprocess.run([sys.executable, "-c", ORPHAN, HOSTS, path, str(timeout)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        fail("orphan client failed: %s %s" % (out.stdout, out.stderr))
    sid, passwd = out.stdout.split()
    return int(sid), bytes.fromhex(passwd)


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=1)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def negotiated_timeout(asked):
    """The session timeout the server granted, from kazoo's (BLATHER-level)
    'Session created' log line."""
    log = logging.getLogger("session-probe-%s" % asked)
    log.setLevel(1)
    log.propagate = False
    cap = Capture()
    log.addHandler(cap)
    c = client(timeout=asked, logger=log)
    close(c)
    for m in cap.messages:
        found = re.search(r"negotiated session timeout: (\d+)", m)
        if found:
            return int(found.group(1))
    fail("kazoo logged no negotiated session timeout: %r" % cap.messages)


def body():
    # Negotiated timeouts.
    for asked, got in [(1.0, 4000), (10.0, 10000), (1000.0, 40000)]:
        eq(negotiated_timeout(asked), got, "negotiated timeout when asking for %.0f ms" % (asked * 1000))

    c = client()
    eq(c.command(b"ruok"), "imok", "ruok")
    v = c.server_version()
    check(isinstance(v, tuple) and len(v) >= 2 and v >= (3, 5), "server_version() (from envi): %r" % (v,))
    c.create("/s", b"")

    # Resume an abandoned session: its ephemeral is still there and ours.
    sid, passwd = orphan("/s/resumed", 10.0)
    eq(c.exists("/s/resumed").ephemeralOwner, sid, "the orphan's ephemeral outlives its connection")
    r = KazooClient(hosts=HOSTS, client_id=(sid, passwd), timeout=10.0)
    r.start(timeout=WAIT)
    try:
        eq(r.client_id[0], sid, "resumed session id")
        eq(r.get("/s/resumed")[0], b"orphan", "read through the resumed session")
        gone = Events()
        c.exists("/s/resumed", watch=gone)
        r.stop()
        r.close()
        eq(gone.wait(1, "DELETED when the resumed session closes"), [("DELETED", "/s/resumed")],
           "closing the resumed session deletes the ephemeral")
    finally:
        r.stop()

    # A wrong password: the server answers that attempt as expired (kazoo
    # logs "Session has expired") and kazoo carries on with a new session.
    sid, passwd = orphan("/s/locked", 10.0)
    log = logging.getLogger("wrong-password")
    log.setLevel(1)
    log.propagate = False
    cap = Capture()
    log.addHandler(cap)
    bad = KazooClient(hosts=HOSTS, client_id=(sid, b"\x00" * 16), timeout=10.0, logger=log)
    try:
        bad.start(timeout=WAIT)
        check(any("Session has expired" in m for m in cap.messages),
              "a wrong password is answered as an expired session: kazoo logged %r" % cap.messages)
        check(bad.client_id[0] not in (0, sid), "kazoo carried on with a new session")
        eq(bad.exists("/s/locked").ephemeralOwner, sid, "the real owner's ephemeral is untouched")
    finally:
        bad.stop()
        bad.close()

    # An abandoned session expires after its timeout (4 s here) and its
    # ephemerals go, firing watches.
    start = time.monotonic()  # before the orphan's last message to the server
    orphan("/s/expiring", 1.0)
    gone = Events()
    check(c.exists("/s/expiring", watch=gone) is not None, "the orphan's ephemeral")
    eq(gone.wait(1, "DELETED when the abandoned session expires"), [("DELETED", "/s/expiring")],
       "expiry deletes the ephemeral")
    elapsed = time.monotonic() - start
    check(elapsed >= 3.9, "the session expired after %.1f s, before its 4 s timeout" % elapsed)


main(body)
