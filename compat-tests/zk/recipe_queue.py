"""kazoo's Queue (sequential children, lowest priority first, then FIFO) and
LockingQueue (an item is locked by the consumer that got it until consumed
or released)."""

import threading

from zkcommon import WAIT, check, client, eq, main


def body():
    a, b = client(), client()

    # Queue.
    qa, qb = a.Queue("/queue"), b.Queue("/queue")
    qa.put(b"one")
    qa.put(b"two")
    qa.put(b"urgent", priority=1)
    qb.put(b"three")
    qb.put(b"four")
    eq(len(qa), 5, "len of the queue")
    eq(qa.get(), b"urgent", "the lowest priority number comes first")
    eq([qb.get(), qa.get(), qb.get(), qa.get()], [b"one", b"two", b"three", b"four"], "then FIFO, across clients")
    eq(qa.get(), None, "get on an empty queue")
    eq(len(qb), 0, "len of the empty queue")

    # LockingQueue.
    la, lb = a.LockingQueue("/lqueue"), b.LockingQueue("/lqueue")
    la.put(b"job1")
    la.put(b"job2")
    eq(la.get(WAIT), b"job1", "a gets the first job")
    eq(lb.get(WAIT), b"job2", "b gets the next one: job1 is locked by a")
    check(la.holds_lock(), "a holds job1's lock")
    check(la.consume(), "a consumes job1")
    check(lb.release(), "b releases job2 unconsumed")
    eq(la.get(WAIT), b"job2", "a released job is handed out again")
    check(la.consume(), "a consumes job2")
    eq(len(la), 0, "len after consuming everything")
    eq(lb.get(0.5), None, "get on an empty locking queue times out")

    # A waiting consumer gets an item put later.
    got = []
    t = threading.Thread(target=lambda: got.append(lb.get(WAIT)), daemon=True)
    t.start()
    la.put(b"late")
    t.join(WAIT)
    eq(got, [b"late"], "a waiting get returns the item put later")
    check(lb.consume(), "b consumes it")

    # Two competing consumers: every item consumed exactly once.
    items = [("item%02d" % i).encode() for i in range(12)]
    la.put_all(items)
    consumed, errors = [], []
    guard = threading.Lock()

    def consumer(q):
        try:
            while True:
                v = q.get(1.0)
                if v is None:
                    return
                with guard:
                    consumed.append(v)
                check(q.consume(), "consume %r" % v)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%s: %s" % (type(e).__name__, e))

    ts = [threading.Thread(target=consumer, args=(q,), daemon=True)
          for q in (a.LockingQueue("/lqueue"), b.LockingQueue("/lqueue"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
        check(not t.is_alive(), "a consumer finished within 30 s")
    eq(errors, [], "consumer errors")
    eq(sorted(consumed), items, "each item consumed exactly once")


main(body)
