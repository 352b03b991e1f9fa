"""kazoo's Barrier (a node that blocks waiters until removed) and
DoubleBarrier (enter blocks until num_clients have entered, leave until all
have left)."""

import threading

from zkcommon import WAIT, check, client, eq, main


def body():
    a, b = client(), client()

    # Barrier.
    ba, bb = a.Barrier("/barrier"), b.Barrier("/barrier")
    check(bb.wait(timeout=0.1), "wait on a barrier that does not exist returns at once")
    ba.create()
    check(a.exists("/barrier") is not None, "create() makes the barrier node")
    check(not bb.wait(timeout=0.5), "wait times out while the barrier stands")
    result = []
    t = threading.Thread(target=lambda: result.append(bb.wait(timeout=WAIT)), daemon=True)
    t.start()
    check(ba.remove(), "remove the barrier")
    t.join(WAIT)
    eq(result, [True], "the waiter passes once the barrier is removed")

    # DoubleBarrier with 3 parties on 3 clients.
    cs = [a, b, client()]
    entered, left, errors = [], [], []
    guard = threading.Lock()
    two_in = threading.Event()

    def party(i):
        try:
            db = cs[i].DoubleBarrier("/double", 3, identifier="p%d" % i)
            db.enter()
            with guard:
                entered.append(i)
            two_in.wait(WAIT)
            db.leave()
            with guard:
                left.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("party %d: %s: %s" % (i, type(e).__name__, e))

    ts = [threading.Thread(target=party, args=(i,), daemon=True) for i in range(3)]
    ts[0].start()
    ts[1].start()
    for t in ts[:2]:
        t.join(0.25)
    check(all(t.is_alive() for t in ts[:2]), "two parties of three still wait to enter")
    eq(entered, [], "nobody enters before the third party arrives")
    ts[2].start()
    two_in.set()
    for t in ts:
        t.join(WAIT)
        check(not t.is_alive(), "each party entered and left within %.0f s" % WAIT)
    eq(errors, [], "party errors")
    eq(sorted(entered), [0, 1, 2], "all entered")
    eq(sorted(left), [0, 1, 2], "all left")
    eq(a.get_children("/double"), [], "no party nodes left")


main(body)
