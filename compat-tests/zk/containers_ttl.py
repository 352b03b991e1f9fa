"""Container and TTL nodes (createContainer 19, createTTL 21; kazoo has no
API for them, so the requests are built here on kazoo's Create2). Both
servers run their reaper every second (ZooKeeper:
znode.container.checkIntervalMs=1000 with extended types enabled; Synod:
--zk-container-check-interval=1000): a container goes once it has had a
child and has none; a TTL node once it has no children and has not been
modified for its TTL. Clients see ephemeralOwner 0 for both."""

import time
from collections import namedtuple

from kazoo.exceptions import BadArgumentsError, NoNodeError
from kazoo.protocol.serialization import Create2, long_struct
from kazoo.security import OPEN_ACL_UNSAFE

from zkcommon import WAIT, Events, check, client, eq, main, raises, wait_until

CONTAINER, TTL, TTL_SEQUENTIAL = 4, 5, 6


class CreateContainer(Create2):
    type = 19


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = Create2(self.path, self.data, self.acl, self.flags).serialize()
        b.extend(long_struct.pack(self.ttl))
        return b

    deserialize = Create2.deserialize


def call(c, request):
    result = c.handler.async_result()
    c._call(request, result)
    return result.get(timeout=WAIT)


def create_container(c, path, data=b""):
    return call(c, CreateContainer(path, data, OPEN_ACL_UNSAFE, CONTAINER))


def create_ttl(c, path, ttl_ms, data=b"", sequential=False):
    flags = TTL_SEQUENTIAL if sequential else TTL
    return call(c, CreateTTL(path, data, OPEN_ACL_UNSAFE, flags, ttl_ms))


def body():
    c = client()
    c.create("/parent", b"")

    # Containers.
    path, st = create_container(c, "/parent/used", b"data")
    eq(path, "/parent/used", "createContainer's path")
    eq((st.ephemeralOwner, st.version, st.dataLength), (0, 0, 4), "a container's Stat")
    eq(c.get("/parent/used")[0], b"data", "a container's data")
    create_container(c, "/parent/unused")
    raises(NoNodeError, create_container, c, "/missing/container")
    c.create("/parent/used/child", b"")
    time.sleep(2.5)  # two reaper periods: a container with a child stays
    check(c.exists("/parent/used") is not None, "a container with a child is kept")

    gone, parent_kids = Events(), Events()
    c.exists("/parent/used", watch=gone)
    c.get_children("/parent", watch=parent_kids)
    c.delete("/parent/used/child")
    eq(gone.wait(1, "the emptied container to be deleted"), [("DELETED", "/parent/used")],
       "the reaper's delete fires the container's exists watch")
    eq(parent_kids.wait(1, "CHILD on /parent"), [("CHILD", "/parent")], "and the parent's children watch")
    eq(c.exists("/parent/used"), None, "the emptied container is gone")
    check(c.exists("/parent/unused") is not None, "a container that never had a child is kept")

    # TTL nodes.
    path, st = create_ttl(c, "/parent/ttl", 500, b"t")
    eq(path, "/parent/ttl", "createTTL's path")
    eq((st.ephemeralOwner, st.dataLength), (0, 1), "a TTL node's Stat")
    path, _ = create_ttl(c, "/parent/ttl-", 500, sequential=True)
    check(path.startswith("/parent/ttl-") and len(path) == len("/parent/ttl-") + 10,
          "a sequential TTL node's name: %r" % path)
    create_ttl(c, "/parent/ttl-with-child", 500)
    c.create("/parent/ttl-with-child/kid", b"")
    raises(BadArgumentsError, create_ttl, c, "/parent/bad-ttl", 0)
    raises(BadArgumentsError, create_ttl, c, "/parent/bad-ttl", -5)
    raises(BadArgumentsError, create_ttl, c, "/parent/bad-ttl", 1 << 40)
    wait_until(lambda: c.exists("/parent/ttl") is None and c.exists(path) is None,
               "childless TTL nodes to expire")
    check(c.exists("/parent/ttl-with-child") is not None, "a TTL node with a child is kept")
    c.delete("/parent/ttl-with-child/kid")
    wait_until(lambda: c.exists("/parent/ttl-with-child") is None,
               "the TTL node to expire once its child is gone")
    eq(sorted(c.get_children("/parent")), ["unused"], "what is left")


main(body)
