"""A session survives the death of its gateway: run as
`zk_sessions_resume.py GW1,GW2` against two gateways on one store.

The client holds an ephemeral and watches: a DataWatch on a node, a
ChildrenWatch on another, a DataWatch on a node that does not exist yet
(kazoo's recipes: kazoo drops its one-shot watches when a connection drops
and sends no SetWatches, so the recipes re-arm them once reconnected). It
tells the test which gateway it is connected to (`CONNECTED host:port
session`); the test kills that gateway with SIGKILL and says `KILLED`. Then:
the client reconnects to the other gateway within its session timeout (10 s)
without losing the session (same id, never LOST); another client sees the
ephemeral still owned by the session; each watch fires when the other client
changes its node; the session goes on writing through the second gateway.
"""

import threading
import time

from kazoo.protocol.states import KazooState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from zkcommon import HOSTS, WAIT, check, client, eq, fail, main, wait_until
from zk_sessions_common import await_line, peer, tell


class Seen:
    """What a watch recipe reported, in order."""

    def __init__(self):
        self.cond = threading.Condition()
        self.values = []

    def add(self, v):
        with self.cond:
            self.values.append(v)
            self.cond.notify_all()

    def wait_for(self, v, what):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while v not in self.values:
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s to report %r; it reported %r"
                         % (WAIT, what, v, self.values))
                self.cond.wait(left)


def body():
    states = []
    c = client(timeout=10.0)
    c.add_listener(states.append)
    c.ensure_path("/resume/parent")
    c.create("/resume/data", b"v0")
    c.create("/resume/eph", b"mine", ephemeral=True)
    data, kids, later = Seen(), Seen(), Seen()
    DataWatch(c, "/resume/data", lambda d, st: data.add(d))
    ChildrenWatch(c, "/resume/parent", lambda ch: kids.add(sorted(ch)))
    DataWatch(c, "/resume/later", lambda d, st: later.add(d))
    data.wait_for(b"v0", "the DataWatch on /resume/data")
    kids.wait_for([], "the ChildrenWatch on /resume/parent")
    later.wait_for(None, "the DataWatch on /resume/later")
    sid = c.client_id[0]
    first = peer(c)
    tell("CONNECTED %s %d" % (first, sid))

    await_line("KILLED")
    wait_until(lambda: KazooState.SUSPENDED in states,
               "kazoo to notice that its gateway died (states: %r)" % states)
    wait_until(lambda: c.connected and states[-1] == KazooState.CONNECTED,
               "kazoo to reconnect (states: %r)" % states)
    check(KazooState.LOST not in states, "the session was never lost: states %r" % states)
    eq(c.client_id[0], sid, "the session id after reconnecting")
    second = peer(c)
    check(second != first and second in HOSTS.split(","),
          "reconnected to the other gateway: %s, then %s (hosts %s)" % (first, second, HOSTS))

    o = client(timeout=10.0)  # only the surviving gateway answers
    st = o.exists("/resume/eph")
    check(st is not None, "the ephemeral survives its first gateway's death")
    eq(st.ephemeralOwner, sid, "the ephemeral's owner")

    o.set("/resume/data", b"v1")
    data.wait_for(b"v1", "the DataWatch on /resume/data, after the failover")
    o.create("/resume/parent/kid")
    kids.wait_for(["kid"], "the ChildrenWatch on /resume/parent, after the failover")
    o.create("/resume/later", b"now")
    later.wait_for(b"now", "the DataWatch on /resume/later, after the failover")

    # The session goes on working through the second gateway.
    c.set("/resume/eph", b"still mine")
    eq(o.get("/resume/eph")[0], b"still mine", "a write of the resumed session")
    eq(o.exists("/resume/eph").ephemeralOwner, sid, "the ephemeral's owner at the end")
    eq(peer(c), second, "still on the second gateway")


main(body)
