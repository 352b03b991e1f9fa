"""Sequential nodes: the name gets the parent's counter as %010d; the counter
counts every create under the parent (sequential or not, ephemeral or not,
later deleted or not) and no delete, so the visible cversion is
2 * creates - numChildren."""

import threading

from zkcommon import check, client, eq, main


def body():
    c = client()

    # Under the root: the counter starts at 0 (the built-in /zookeeper is not
    # counted), so the root's cversion starts at -1.
    eq(c.exists("/").cversion, -1, "cversion of / on a fresh server")
    eq(c.create("/root-", b"", sequence=True), "/root-0000000000", "first sequential node under /")
    c.delete("/root-0000000000")
    eq(c.exists("/").cversion, 1, "cversion of / after one create and one delete")

    c.create("/seq", b"")
    eq(c.create("/seq/n-", b"", sequence=True), "/seq/n-0000000000", "first sequential child")
    eq(c.create("/seq/n-", b"", sequence=True), "/seq/n-0000000001", "second")
    c.create("/seq/plain", b"")
    c.delete("/seq/plain")
    eq(c.create("/seq/n-", b"", sequence=True), "/seq/n-0000000003",
       "a plain create uses up a number, its delete does not")
    eq(c.create("/seq/e-", b"", sequence=True, ephemeral=True), "/seq/e-0000000004",
       "ephemeral sequential nodes share the counter")
    eq(c.create("/seq/", b"", sequence=True), "/seq/0000000005", "an empty prefix")
    eq(c.create("/seq/n-0000000000x", b"", sequence=True), "/seq/n-0000000000x0000000006",
       "the suffix is appended to any name")
    st = c.exists("/seq")
    eq((st.numChildren, st.cversion), (6, 2 * 7 - 6), "numChildren, cversion = 2 * creates - numChildren")

    # Counters are per parent.
    c.create("/seq/n-0000000000/sub-", b"", sequence=True)
    eq(c.get_children("/seq/n-0000000000"), ["sub-0000000000"], "a child's own counter")

    # Concurrent creators (two clients) get distinct, gap-free numbers.
    d = client()
    names, errors = [], []
    lock = threading.Lock()

    def creator(cl):
        try:
            for _ in range(20):
                p = cl.create("/seq/race-", b"", sequence=True)
                with lock:
                    names.append(p)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%s: %s (after %d names)" % (type(e).__name__, e, len(names)))

    ts = [threading.Thread(target=creator, args=(cl,)) for cl in (c, d)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
        check(not t.is_alive(), "a creator thread finished within 10 s")
    eq(errors, [], "errors of concurrent sequential creates")
    nums = sorted(int(p[-10:]) for p in names)
    eq(nums, list(range(7, 47)), "numbers of 40 concurrent sequential creates")
    check(all(len(p.rsplit("-", 1)[1]) == 10 for p in names), "suffixes are 10 digits")


main(body)
