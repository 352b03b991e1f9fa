"""Shared helpers of the kazoo scripts in compat-tests/zk.

Each script is run as `python3 <script>.py <host:port>` against upstream
ZooKeeper 3.8 and against Synod's ZooKeeper gateway (compat-tests/tests/
zk_kazoo.rs). It asserts the behaviour itself: exit 0 and a last line `PASS`
when every check holds; otherwise the failing check is printed (`FAIL: ...`
with the traceback) and the exit status is 1. Every wait is bounded (WAIT
seconds), and a watchdog dumps all threads' stacks and exits 1 if the whole
script takes longer than SCRIPT_LIMIT seconds (a request the server never
answers).
"""

import faulthandler
import logging
import sys
import threading
import time
import traceback

from kazoo.client import KazooClient

WAIT = 10.0
SCRIPT_LIMIT = 90

HOSTS = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2181"

_clients = []


class CheckFailed(Exception):
    pass


def fail(what):
    raise CheckFailed(what)


def check(cond, what):
    if not cond:
        fail(what)


def eq(actual, expected, what):
    if actual != expected:
        fail("%s: expected %r, got %r" % (what, expected, actual))


def raises(exc, fn, *args, **kwargs):
    """fn(*args, **kwargs) must raise exc (a kazoo exception class)."""
    try:
        r = fn(*args, **kwargs)
    except exc as e:
        return e
    except Exception as e:  # noqa: BLE001 - report what was raised instead
        fail("%s%r: expected %s, got %s: %s" % (fn.__name__, args, exc.__name__, type(e).__name__, e))
    fail("%s%r: expected %s, got result %r" % (fn.__name__, args, exc.__name__, r))


def wait_until(pred, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() >= deadline:
            fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


def client(**kwargs):
    """A started KazooClient (connected within WAIT s), stopped at exit."""
    kwargs.setdefault("timeout", 10.0)
    c = KazooClient(hosts=HOSTS, **kwargs)
    c.start(timeout=WAIT)
    _clients.append(c)
    return c


def close(c):
    """Ends c's session (closeSession) and its connection."""
    c.stop()
    c.close()
    if c in _clients:
        _clients.remove(c)


class Events:
    """A watch callback that records (type, path) of each WatchedEvent, and
    checks each arrives with state CONNECTED."""

    def __init__(self):
        self.cond = threading.Condition()
        self.events = []

    def __call__(self, event):
        with self.cond:
            self.events.append((event.type, event.path, event.state))
            self.cond.notify_all()

    def wait(self, n, what):
        """Waits until at least n events were recorded; returns them as
        (type, path) pairs."""
        deadline = time.monotonic() + WAIT
        with self.cond:
            while len(self.events) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s; events so far: %r"
                         % (WAIT, what, self.events))
                self.cond.wait(left)
            for (t, p, s) in self.events:
                eq(s, "CONNECTED", "state of the %s event on %s" % (t, p))
            return [(t, p) for (t, p, _) in self.events]

    def seen(self):
        with self.cond:
            return [(t, p) for (t, p, _) in self.events]


class Sentinel:
    """Proves a negative ("no event fired") without sleeping: the server
    delivers a session's notifications in order, so once a watch triggered
    AFTER the action has fired, any event the action caused has been
    delivered too."""

    def __init__(self, c, path):
        self.c = c
        self.path = path
        self.n = 0
        c.ensure_path(path)

    def flush(self):
        self.n += 1
        ev = Events()
        self.c.get(self.path, watch=ev)
        self.c.set(self.path, str(self.n).encode())
        ev.wait(1, "the sentinel watch on %s" % self.path)


def main(body):
    """Runs body(), prints PASS or the failure, exits 0/1."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                        format="kazoo log: %(levelname)s %(name)s: %(message)s")
    faulthandler.dump_traceback_later(SCRIPT_LIMIT, exit=True)
    status = 0
    try:
        body()
    except CheckFailed as e:
        print("FAIL: %s" % e)
        traceback.print_exc(file=sys.stdout)
        status = 1
    except Exception as e:  # noqa: BLE001 - any other error fails the script too
        print("FAIL: unexpected %s: %s" % (type(e).__name__, e))
        traceback.print_exc(file=sys.stdout)
        status = 1
    for c in list(_clients):
        try:
            close(c)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    faulthandler.cancel_dump_traceback_later()
    if status == 0:
        print("PASS")
    sys.stdout.flush()
    sys.exit(status)
