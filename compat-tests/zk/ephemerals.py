"""Ephemeral nodes: owned by the creating session (ephemeralOwner), seen by
other clients, never parents, deleted when the session closes -- and that
deletion fires the other clients' watches and moves the parent's cversion
and pzxid like any delete."""

from kazoo.exceptions import NoChildrenForEphemeralsError

from zkcommon import Events, check, client, close, eq, main, raises


def body():
    owner = client()
    watcher = client()
    owner.create("/eph", b"")
    sid = owner.client_id[0]

    eq(owner.create("/eph/a", b"A", ephemeral=True), "/eph/a", "ephemeral create")
    seq = owner.create("/eph/s-", b"S", ephemeral=True, sequence=True)
    eq(seq, "/eph/s-0000000001", "ephemeral sequential create")
    watcher.create("/eph/persistent", b"")

    # Another client sees them, with the owner's session id.
    data, st = watcher.get("/eph/a")
    eq(data, b"A", "another client reads an ephemeral")
    eq(st.ephemeralOwner, sid, "ephemeralOwner is the creating session's id")
    eq(watcher.exists(seq).ephemeralOwner, sid, "owner of the sequential ephemeral")
    eq(watcher.exists("/eph/persistent").ephemeralOwner, 0, "a persistent node has owner 0")
    eq(sorted(watcher.get_children("/eph")), ["a", "persistent", "s-0000000001"], "children")

    # Ephemerals cannot have children.
    raises(NoChildrenForEphemeralsError, owner.create, "/eph/a/child", b"")
    raises(NoChildrenForEphemeralsError, watcher.create, "/eph/a/child", b"")

    # The owner may delete its ephemeral like any node; so may another client.
    owner.create("/eph/b", b"", ephemeral=True)
    watcher.delete("/eph/b")
    eq(owner.exists("/eph/b"), None, "an ephemeral deleted by another client")

    # Closing the session deletes its ephemerals and fires the watches.
    before = watcher.exists("/eph")
    data_a, exists_s, kids = Events(), Events(), Events()
    watcher.get("/eph/a", watch=data_a)
    watcher.exists(seq, watch=exists_s)
    watcher.get_children("/eph", watch=kids)
    close(owner)
    eq(data_a.wait(1, "DELETED on /eph/a"), [("DELETED", "/eph/a")], "data watch on the closed session's ephemeral")
    eq(exists_s.wait(1, "DELETED on %s" % seq), [("DELETED", seq)], "exists watch on the closed session's ephemeral")
    eq(kids.wait(1, "CHILD on /eph"), [("CHILD", "/eph")], "parent's children watch")
    eq(watcher.get_children("/eph"), ["persistent"], "children after the owner's session closed")
    eq(watcher.exists("/eph/a"), None, "the ephemeral is gone")
    after = watcher.exists("/eph")
    eq(after.numChildren, before.numChildren - 2, "numChildren after the session closed")
    eq(after.cversion, before.cversion + 2, "each ephemeral deleted bumps the parent's cversion")
    check(after.pzxid > before.pzxid, "the deletions move the parent's pzxid")

    # A new session can create the same names again.
    again = client()
    eq(again.create("/eph/a", b"again", ephemeral=True), "/eph/a", "re-create after the owner left")
    check(again.exists("/eph/a").ephemeralOwner not in (0, sid), "new owner")


main(body)
