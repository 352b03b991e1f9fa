"""Transactions (multi): all ops apply at one zxid, results per op; a failing
transaction applies nothing and reports, per op, RolledBack before the
failing op, its error, RuntimeInconsistency after it."""

from kazoo.exceptions import (BadVersionError, NoNodeError, NotEmptyError)
from kazoo.protocol.states import ZnodeStat

from zkcommon import check, client, eq, main


def kinds(results):
    return [type(r).__name__ if isinstance(r, Exception) else r for r in results]


def body():
    c = client()

    # Success: create, create, set, check, delete, sequential create.
    t = c.transaction()
    t.create("/tx", b"a")
    t.create("/tx/c", b"b")
    t.set_data("/tx", b"c")
    t.check("/tx", 1)
    t.delete("/tx/c")
    t.create("/tx/s-", b"", sequence=True)
    r = t.commit()
    eq(len(r), 6, "one result per op")
    eq(r[0], "/tx", "create's result")
    eq(r[1], "/tx/c", "create's result")
    check(isinstance(r[2], ZnodeStat), "set_data's result is a Stat: %r" % (r[2],))
    eq(r[2].version, 1, "version in set_data's result")
    eq(r[3:5], [True, True], "check's and delete's results")
    eq(r[5], "/tx/s-0000000001", "the sequence suffix counts the creates before it (not the delete)")
    data, st = c.get("/tx")
    eq(data, b"c", "data after the transaction")
    eq(st.mzxid, st.czxid, "every op of a transaction has the same zxid (mzxid == czxid)")
    eq(st.pzxid, st.czxid, "... and pzxid")
    eq(c.exists("/tx/s-0000000001").czxid, st.czxid, "... and the sequential node's czxid")
    eq(c.get_children("/tx"), ["s-0000000001"], "children after the transaction")
    eq((st.cversion, st.numChildren), (3, 1), "cversion counts the creates and the delete")

    # Failure in the middle: nothing applies; per-op results.
    before = c.exists("/tx")
    t = c.transaction()
    t.create("/tx2", b"")
    t.check("/tx", 99)
    t.set_data("/tx", b"never")
    r = t.commit()
    eq(kinds(r), ["RolledBackError", "BadVersionError", "RuntimeInconsistency"], "results of a failed transaction")
    eq(c.exists("/tx2"), None, "a failed transaction creates nothing")
    eq(c.get("/tx")[0], b"c", "a failed transaction sets nothing")
    eq(c.exists("/tx").mzxid, before.mzxid, "a failed transaction changes no Stat")

    # Failure on the first op.
    t = c.transaction()
    t.create("/tx", b"")
    t.delete("/tx/s-0000000001")
    r = t.commit()
    eq(kinds(r), ["NodeExistsError", "RuntimeInconsistency"], "results when the first op fails")
    check(c.exists("/tx/s-0000000001") is not None, "the delete after the failure did not apply")

    # Failure on the last op; other error codes.
    for (op, err) in [(lambda t: t.delete("/tx"), NotEmptyError),
                      (lambda t: t.delete("/nope"), NoNodeError),
                      (lambda t: t.set_data("/tx", b"x", version=7), BadVersionError),
                      (lambda t: t.create("/nope/child", b""), NoNodeError)]:
        t = c.transaction()
        t.create("/tx3", b"")
        t.set_data("/tx", b"y")
        op(t)
        r = t.commit()
        eq(kinds(r), ["RolledBackError", "RolledBackError", err.__name__], "results when the last op fails")
        eq(c.exists("/tx3"), None, "nothing of a failed transaction applies")
    eq(c.get("/tx")[0], b"c", "data after the failed transactions")

    # An op may depend on an earlier op of the same transaction.
    t = c.transaction()
    t.create("/tx4", b"")
    t.create("/tx4/child", b"")
    t.check("/tx4/child", 0)
    t.delete("/tx4/child")
    t.delete("/tx4")
    eq(t.commit(), ["/tx4", "/tx4/child", True, True, True], "ops on nodes created earlier in the transaction")
    eq(c.exists("/tx4"), None, "created then deleted in one transaction")

    # Ephemeral creates in a transaction belong to the session.
    t = c.transaction()
    t.create("/tx/e", b"", ephemeral=True)
    r = t.commit()
    eq(r, ["/tx/e"], "ephemeral create in a transaction")
    eq(c.exists("/tx/e").ephemeralOwner, c.client_id[0], "owner of an ephemeral created in a transaction")


main(body)
