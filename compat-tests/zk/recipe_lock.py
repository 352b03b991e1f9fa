"""kazoo's Lock recipe (sequential ephemeral children + watch on the
predecessor): one holder at a time across clients, waiters get the lock
in order when it is released."""

import threading
import time

from kazoo.exceptions import LockTimeout

from zkcommon import WAIT, check, client, eq, main, wait_until


def try_acquire(lock, timeout):
    try:
        return lock.acquire(timeout=timeout)
    except LockTimeout:
        return False


def body():
    a, b = client(), client()
    la, lb = a.Lock("/lock", "a"), b.Lock("/lock", "b")

    check(la.acquire(timeout=WAIT), "a acquires the free lock")
    check(not try_acquire(lb, 1.0), "b cannot acquire the lock a holds (1 s timeout)")
    eq(la.contenders(), ["a"], "a failed acquire leaves no contender behind")

    # b waits; a's release hands the lock over.
    got = threading.Event()

    def wait_for_lock():
        if lb.acquire(timeout=WAIT):
            got.set()

    t = threading.Thread(target=wait_for_lock, daemon=True)
    t.start()
    wait_until(lambda: la.contenders() == ["a", "b"], "b to queue behind a")
    check(not got.is_set(), "b does not hold the lock while a does")
    la.release()
    check(got.wait(WAIT), "b gets the lock once a releases it")
    t.join(WAIT)
    eq(lb.contenders(), ["b"], "contenders after the hand-over")
    lb.release()
    eq(lb.contenders(), [], "no contenders once released")

    # Mutual exclusion under contention: 2 clients x 2 threads x 5 rounds.
    holder = [None]
    overlaps = []
    rounds = []
    guard = threading.Lock()

    def worker(cl, name):
        lock = cl.Lock("/lock2", name)
        for i in range(5):
            check(lock.acquire(timeout=WAIT), "%s acquires (round %d)" % (name, i))
            with guard:
                if holder[0] is not None:
                    overlaps.append((holder[0], name))
                holder[0] = name
            time.sleep(0.005)
            with guard:
                holder[0] = None
                rounds.append(name)
            lock.release()

    errors = []

    def run(cl, name):
        try:
            worker(cl, name)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%s: %s: %s" % (name, type(e).__name__, e))

    ts = [threading.Thread(target=run, args=(cl, "%s%d" % (n, k)), daemon=True)
          for (cl, n) in ((a, "a"), (b, "b")) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
        check(not t.is_alive(), "a worker finished within 30 s")
    eq(errors, [], "worker errors")
    eq(overlaps, [], "two holders at once")
    eq(len(rounds), 20, "rounds completed")
    eq(a.get_children("/lock2"), [], "no lock nodes left")


main(body)
