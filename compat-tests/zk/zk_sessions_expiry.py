"""The ephemerals of a session nobody serves any more are deleted after its
timeout, as an expiry: run as
`zk_sessions_expiry.py HOSTS PARENT SESSION PASSWD_HEX TIMEOUT_MS`
while zk_sessions_holder.py holds PARENT/eph with that session.

Watches PARENT's children and PARENT/eph, prints `WATCHING`, and waits for
`KILLED` (the test killed the holder's gateway, or the holder itself). Then:
PARENT/eph is not deleted before half the session timeout, is deleted within
the timeout plus 20 s, the exist watch fires NodeDeleted and the child watch
NodeChildrenChanged, the parent's numChildren drops to 0, its cversion goes
up by one and its pzxid moves, its data version and mzxid do not; and the
session cannot be resumed (answered as expired).
"""

import logging
import sys
import time

from kazoo.client import KazooClient

from zkcommon import HOSTS, WAIT, Events, check, client, eq, main
from zk_sessions_common import await_line, tell, wait_events


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(level=1)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def body():
    parent = sys.argv[2]
    sid = int(sys.argv[3])
    passwd = bytes.fromhex(sys.argv[4])
    timeout_s = int(sys.argv[5]) / 1000.0
    eph = parent + "/eph"

    o = client(timeout=10.0)
    st = o.exists(eph)
    check(st is not None, "the holder's ephemeral %s" % eph)
    eq(st.ephemeralOwner, sid, "its owner")
    before = o.exists(parent)
    eq(before.numChildren, 1, "the parent's numChildren before")
    child_ev, gone_ev = Events(), Events()
    eq(o.get_children(parent, watch=child_ev), ["eph"], "the parent's children before")
    check(o.exists(eph, watch=gone_ev) is not None, "the ephemeral, watched")
    tell("WATCHING")

    await_line("KILLED")
    killed = time.monotonic()
    gone = wait_events(gone_ev, 1, "the ephemeral's deletion", timeout_s + 20)
    elapsed = time.monotonic() - killed
    tell("DELETED after %.1f s" % elapsed)
    eq(gone, [("DELETED", eph)], "the watch on the ephemeral")
    check(elapsed >= timeout_s / 2,
          "the ephemeral lives on for the session timeout (%.0f s): deleted after %.1f s"
          % (timeout_s, elapsed))
    eq(wait_events(child_ev, 1, "the parent's child watch", WAIT), [("CHILD", parent)],
       "the child watch on the parent")

    after = o.exists(parent)
    eq(after.numChildren, 0, "the parent's numChildren after the expiry")
    eq(after.cversion, before.cversion + 1, "the parent's cversion after the expiry")
    check(after.pzxid > before.pzxid,
          "the parent's pzxid moves with the expiry: 0x%x, then 0x%x" % (before.pzxid, after.pzxid))
    eq((after.version, after.mzxid), (before.version, before.mzxid),
       "the parent's data version and mzxid")
    eq(o.get_children(parent), [], "the parent's children after the expiry")
    eq(o.exists(eph), None, "the ephemeral after the expiry")

    # The session is over: resuming it is answered as expired (kazoo logs it and
    # carries on with a new session).
    log = logging.getLogger("resume-expired")
    log.setLevel(1)
    log.propagate = False
    cap = Capture()
    log.addHandler(cap)
    r = KazooClient(hosts=HOSTS, client_id=(sid, passwd), timeout=10.0, logger=log)
    try:
        r.start(timeout=WAIT)
        check(any("Session has expired" in m for m in cap.messages),
              "resuming the expired session is answered as expired: kazoo logged %r" % cap.messages)
        check(r.client_id[0] != sid, "kazoo carried on with a new session")
    finally:
        r.stop()
        r.close()


main(body)
