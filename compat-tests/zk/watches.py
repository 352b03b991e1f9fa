"""One-shot watches: data (get), exists, children (get_children); which
change fires which watch, with what event type and path; a fired watch
fires no more; a change by another client fires them too."""

from zkcommon import Events, Sentinel, check, client, eq, main

CREATED, DELETED, CHANGED, CHILD = "CREATED", "DELETED", "CHANGED", "CHILD"


def body():
    c = client()
    other = client()
    s = Sentinel(c, "/sentinel")
    c.create("/w", b"0")

    # Data watch: set fires CHANGED once; the next set fires nothing.
    data = Events()
    c.get("/w", watch=data)
    c.set("/w", b"1")
    eq(data.wait(1, "CHANGED on /w"), [(CHANGED, "/w")], "data watch after set")
    c.set("/w", b"2")
    s.flush()
    eq(data.seen(), [(CHANGED, "/w")], "a data watch is one-shot")

    # A change made by another client fires the watch too.
    data = Events()
    c.get("/w", watch=data)
    other.set("/w", b"3")
    eq(data.wait(1, "CHANGED on /w from the other client"), [(CHANGED, "/w")], "watch vs other client")
    eq(c.get("/w")[0], b"3", "the change is visible after its event")

    # Exists watch on a missing node: create fires CREATED.
    ex = Events()
    eq(c.exists("/w/new", watch=ex), None, "exists of a missing node")
    c.create("/w/new", b"n")
    eq(ex.wait(1, "CREATED on /w/new"), [(CREATED, "/w/new")], "exists watch on a missing node")

    # Exists watch on an existing node: set fires CHANGED, delete DELETED.
    ex = Events()
    check(c.exists("/w/new", watch=ex) is not None, "exists of an existing node")
    c.set("/w/new", b"m")
    eq(ex.wait(1, "CHANGED on /w/new"), [(CHANGED, "/w/new")], "exists watch on an existing node, set")
    ex = Events()
    c.exists("/w/new", watch=ex)
    c.delete("/w/new")
    eq(ex.wait(1, "DELETED on /w/new"), [(DELETED, "/w/new")], "exists watch, delete")

    # Children watch: a child create fires CHILD on the parent, once; data
    # changes of the parent or of a child don't fire it.
    kids = Events()
    eq(c.get_children("/w", watch=kids), [], "children of /w")
    c.set("/w", b"4")
    c.create("/w/a", b"")
    c.set("/w/a", b"x")
    eq(kids.wait(1, "CHILD on /w"), [(CHILD, "/w")], "children watch after a create")
    c.create("/w/b", b"")
    s.flush()
    eq(kids.seen(), [(CHILD, "/w")], "a children watch is one-shot and ignores data changes")

    # A child delete fires CHILD too.
    kids = Events()
    eq(sorted(c.get_children("/w", watch=kids)), ["a", "b"], "children of /w")
    c.delete("/w/b")
    eq(kids.wait(1, "CHILD on /w after a delete"), [(CHILD, "/w")], "children watch after a delete")

    # Grandchildren don't fire a children watch.
    kids = Events()
    c.get_children("/w", watch=kids)
    c.create("/w/a/deep", b"")
    s.flush()
    eq(kids.seen(), [], "a grandchild create does not fire the children watch")

    # Deleting a node fires its data watch and its children watch (DELETED),
    # and the parent's children watch (CHILD).
    c.delete("/w/a/deep")
    node_data, node_kids, parent_kids = Events(), Events(), Events()
    c.get("/w/a", watch=node_data)
    c.get_children("/w/a", watch=node_kids)
    c.get_children("/w", watch=parent_kids)
    c.delete("/w/a")
    eq(node_data.wait(1, "DELETED (data watch)"), [(DELETED, "/w/a")], "data watch of a deleted node")
    eq(node_kids.wait(1, "DELETED (children watch)"), [(DELETED, "/w/a")], "children watch of a deleted node")
    eq(parent_kids.wait(1, "CHILD on the parent"), [(CHILD, "/w")], "parent's children watch")

    # Watches set by one client are not fired by reads or by other clients'
    # watches: a watch set by `other` fires for `other` only.
    mine, theirs = Events(), Events()
    c.get("/w", watch=mine)
    other.get("/w", watch=theirs)
    other.set("/w", b"5")
    eq(mine.wait(1, "c's watch"), [(CHANGED, "/w")], "c's watch")
    eq(theirs.wait(1, "other's watch"), [(CHANGED, "/w")], "other's watch")
    s.flush()
    eq(len(mine.seen()) + len(theirs.seen()), 2, "one event per watch")


main(body)
