"""Holds an ephemeral until it is killed: run as
`zk_sessions_holder.py HOSTS TIMEOUT_S PARENT`.

Creates PARENT (persistent) and PARENT/eph (ephemeral) with a session of
TIMEOUT_S seconds, prints `HOLDING <session id> <password hex>`, then waits
(at most 80 s) for the test to kill it with SIGKILL: its session must end by
expiring, never by closeSession.
"""

import os
import sys
import time

from zkcommon import client
from zk_sessions_common import tell


def body():
    c = client(timeout=float(sys.argv[2]))
    parent = sys.argv[3]
    c.ensure_path(parent)
    c.create(parent + "/eph", b"held", ephemeral=True)
    sid, passwd = c.client_id
    tell("HOLDING %d %s" % (sid, passwd.hex()))
    time.sleep(80)
    # Not killed: leave without closing the session, and fail.
    print("FAIL: the test did not kill the holder within 80 s", flush=True)
    os._exit(1)


body()
