"""Create, read, update, delete: data, Stat fields and versions, and the
errors of each operation (NoNode, NodeExists, BadVersion, NotEmpty)."""

import time

from kazoo.exceptions import (BadVersionError, NoNodeError, NodeExistsError,
                              NotEmptyError)

from zkcommon import check, client, eq, main, raises


def body():
    c = client()
    now_ms = time.time() * 1000

    # The root exists and lists the system node.
    check("zookeeper" in c.get_children("/"), "/ lists zookeeper")

    # create returns the path; get returns the data and a Stat.
    eq(c.create("/crud", b"v1"), "/crud", "create's result")
    data, st = c.get("/crud")
    eq(data, b"v1", "data after create")
    eq((st.version, st.cversion, st.aversion), (0, 0, 0), "versions after create")
    eq((st.dataLength, st.numChildren, st.ephemeralOwner), (2, 0, 0), "dataLength, numChildren, owner")
    eq(st.mzxid, st.czxid, "mzxid of a new node")
    eq(st.pzxid, st.czxid, "pzxid of a new node")
    eq(st.mtime, st.ctime, "mtime of a new node")
    check(abs(st.ctime - now_ms) < 60000, "ctime is the server's wall clock in ms: %r vs %r" % (st.ctime, now_ms))

    # create2 (include_data) returns the same Stat as a read.
    path, st2 = c.create("/crud2", b"", include_data=True)
    eq(path, "/crud2", "create2's path")
    eq(c.exists("/crud2"), st2, "exists' Stat vs create2's")
    check(st2.czxid > st.czxid, "zxids increase: %r then %r" % (st.czxid, st2.czxid))
    eq(c.get("/crud2")[0], b"", "empty data")
    eq(st2.dataLength, 0, "dataLength of empty data")

    # set: version check and bump, mzxid moves, czxid stays.
    st3 = c.set("/crud", b"v2", version=0)
    eq(st3.version, 1, "version after one set")
    eq(st3.czxid, st.czxid, "czxid after set")
    check(st3.mzxid > st2.czxid, "mzxid after set is the set's zxid")
    eq(st3.dataLength, 2, "dataLength after set")
    raises(BadVersionError, c.set, "/crud", b"v3", version=0)
    eq(c.get("/crud")[0], b"v2", "a set with a bad version changes nothing")
    eq(c.set("/crud", b"v3", version=-1).version, 2, "version -1 matches any version")
    eq(c.set("/crud", b"v3").version, 3, "setting the same data still bumps the version")

    # Binary data round-trips byte for byte.
    blob = bytes(range(256)) * 400
    c.set("/crud2", blob)
    data, st = c.get("/crud2")
    eq(data, blob, "binary data")
    eq(st.dataLength, len(blob), "dataLength of binary data")

    # exists / get / set / delete of a missing node.
    eq(c.exists("/crud/missing"), None, "exists of a missing node")
    raises(NoNodeError, c.get, "/crud/missing")
    raises(NoNodeError, c.set, "/crud/missing", b"x")
    raises(NoNodeError, c.delete, "/crud/missing")
    raises(NoNodeError, c.get_children, "/crud/missing")
    raises(NoNodeError, c.create, "/crud/missing/child", b"x")
    raises(NodeExistsError, c.create, "/crud", b"again")
    eq(c.get("/crud")[0], b"v3", "a failed create changes nothing")

    # Children: parent's numChildren, cversion (creates + deletes), pzxid.
    before = c.exists("/crud")
    c.create("/crud/b", b"1")
    c.create("/crud/a", b"2")
    kids, pst = c.get_children("/crud", include_data=True)
    eq(sorted(kids), ["a", "b"], "children")
    eq((pst.numChildren, pst.cversion), (2, 2), "numChildren, cversion after two creates")
    eq(pst.version, before.version, "children don't change the parent's data version")
    eq(pst.mzxid, before.mzxid, "children don't change the parent's mzxid")
    eq(pst.pzxid, c.exists("/crud/a").czxid, "pzxid is the last child change's zxid")
    raises(NotEmptyError, c.delete, "/crud")
    raises(BadVersionError, c.delete, "/crud/a", version=5)
    c.delete("/crud/a", version=0)
    pst2 = c.exists("/crud")
    eq((pst2.numChildren, pst2.cversion), (1, 3), "numChildren, cversion after a delete")
    check(pst2.pzxid > pst.pzxid, "a delete moves the parent's pzxid")
    eq(c.get_children("/crud"), ["b"], "children after delete")

    # Paths: makepath creates the parents; recursive delete removes a tree.
    c.create("/crud/x/y/z", b"deep", makepath=True)
    eq(c.get("/crud/x/y/z")[0], b"deep", "data of a node created with makepath")
    eq(c.get("/crud/x")[0], b"", "parents created by makepath are empty")
    c.ensure_path("/crud/x/y/z")
    c.delete("/crud", recursive=True)
    eq(c.exists("/crud"), None, "recursive delete")

    # A second client sees the first's writes.
    d = client()
    c.create("/shared", b"from c")
    eq(d.get("/shared")[0], b"from c", "read by another client")
    d.set("/shared", b"from d")
    c.sync("/shared")
    eq(c.get("/shared")[0], b"from d", "read after sync")


main(body)
