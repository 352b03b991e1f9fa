"""closeSession deletes the session's ephemerals at once: run as
`zk_sessions_close.py HOSTS_A HOSTS_B` (client A, with a 30 s session,
through HOSTS_A; client B, the observer, through HOSTS_B).

A creates /close/eph and an ephemeral sequential node under /close; B
watches them and /close's children; A closes its session (kazoo's stop()).
By the time the closeSession reply has reached A, B (after a sync) sees no
ephemeral left, its watches fire well within a second or so (not after the
30 s timeout), and /close's numChildren is 0, its cversion up by two (two
deletes), its pzxid moved.
"""

import sys
import time

from kazoo.client import KazooClient

from zkcommon import WAIT, Events, check, eq, main
from zk_sessions_common import wait_events

import zkcommon


def started(hosts, timeout):
    c = KazooClient(hosts=hosts, timeout=timeout)
    c.start(timeout=WAIT)
    zkcommon._clients.append(c)
    return c


def body():
    a = started(sys.argv[1], 30.0)
    b = started(sys.argv[2], 10.0)
    a.ensure_path("/close")
    a.create("/close/eph", b"", ephemeral=True)
    seq = a.create("/close/eph-", b"", ephemeral=True, sequence=True)
    sid = a.client_id[0]
    eq(b.exists("/close/eph").ephemeralOwner, sid, "the ephemeral's owner, seen by B")
    before = b.exists("/close")
    eq(before.numChildren, 2, "/close's numChildren before")
    child_ev, gone_ev = Events(), Events()
    eq(sorted(b.get_children("/close", watch=child_ev)),
       sorted(["eph", seq.rsplit("/", 1)[1]]), "/close's children before")
    check(b.exists("/close/eph", watch=gone_ev) is not None, "the ephemeral, watched by B")

    started_at = time.monotonic()
    a.stop()  # closeSession, and its reply
    a.close()
    zkcommon._clients.remove(a)
    b.sync("/close")
    eq(b.get_children("/close"), [], "/close's children once the closeSession reply is in")
    eq(wait_events(gone_ev, 1, "the ephemeral's deletion", WAIT), [("DELETED", "/close/eph")],
       "B's watch on the ephemeral")
    eq(wait_events(child_ev, 1, "/close's child watch", WAIT), [("CHILD", "/close")],
       "B's child watch on /close")
    elapsed = time.monotonic() - started_at
    check(elapsed < 5.0, "closeSession deletes at once, not at the 30 s timeout: %.1f s" % elapsed)
    after = b.exists("/close")
    eq(after.numChildren, 0, "/close's numChildren after")
    eq(after.cversion, before.cversion + 2, "/close's cversion after two deletes")
    check(after.pzxid > before.pzxid, "/close's pzxid moves: 0x%x, then 0x%x" % (before.pzxid, after.pzxid))


main(body)
