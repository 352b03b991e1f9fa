"""ACLs: world, digest and auth ids; per-permission NoAuth errors; aversion
and setACL's version check; digest credentials added with add_auth."""

from kazoo.exceptions import BadVersionError, InvalidACLError, NoAuthError, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, Permissions, make_digest_acl

from zkcommon import client, eq, main, raises

# base64(sha1("alice:secret"))
ALICE = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="


def body():
    alice = client(auth_data=[("digest", "alice:secret")])
    anon = client()

    # The default ACL is world:anyone with all permissions.
    anon.create("/open", b"o")
    acls, st = anon.get_acls("/open")
    eq(acls, OPEN_ACL_UNSAFE, "default ACL")
    eq(st.aversion, 0, "aversion of a new node")

    # A digest ACL: only alice may do anything.
    acl = make_digest_acl("alice", "secret", all=True)
    eq(acl.id.id, ALICE, "kazoo's digest id")
    alice.create("/alice", b"secret data", acl=[acl])
    raises(NoAuthError, anon.get, "/alice")
    raises(NoAuthError, anon.set, "/alice", b"x")
    raises(NoAuthError, anon.create, "/alice/child", b"")
    raises(NoAuthError, anon.get_children, "/alice")
    raises(NoAuthError, anon.set_acls, "/alice", OPEN_ACL_UNSAFE)
    raises(NoAuthError, anon.get_acls, "/alice")  # getACL needs READ or ADMIN
    eq(anon.exists("/alice").dataLength, 11, "exists needs no permission")
    eq(alice.get("/alice")[0], b"secret data", "alice reads her node")
    eq(alice.get_acls("/alice")[0], [ACL(Permissions.ALL, Id("digest", ALICE))], "getACL")

    # add_auth on an existing session.
    anon.add_auth("digest", "alice:secret")
    eq(anon.get("/alice")[0], b"secret data", "read after add_auth")

    # Per-permission checks: read-only for the world.
    bob = client()
    alice.create("/ro", b"r", acl=READ_ACL_UNSAFE)
    eq(bob.get("/ro")[0], b"r", "world read")
    raises(NoAuthError, bob.set, "/ro", b"w")
    raises(NoAuthError, bob.create, "/ro/child", b"")
    eq(bob.get_acls("/ro")[0], READ_ACL_UNSAFE, "getACL with read permission")
    bob.delete("/ro")  # delete checks DELETE on the parent (/: world has all), not on the node
    eq(bob.exists("/ro"), None, "a read-only node deleted by a client with DELETE on its parent")

    # CREATE but not DELETE on a parent.
    alice.create("/cr", b"", acl=[ACL(Permissions.CREATE | Permissions.READ, Id("world", "anyone"))])
    bob.create("/cr/kid", b"")
    raises(NoAuthError, bob.delete, "/cr/kid")
    eq(bob.get_children("/cr"), ["kid"], "children")

    # setACL: version check, aversion bump.
    raises(BadVersionError, alice.set_acls, "/open", READ_ACL_UNSAFE, version=3)
    st = alice.set_acls("/open", READ_ACL_UNSAFE, version=0)
    eq(st.aversion, 1, "aversion after setACL")
    eq(st.version, 0, "setACL does not change the data version")
    raises(NoAuthError, bob.set, "/open", b"x")
    raises(NoNodeError, alice.set_acls, "/missing", OPEN_ACL_UNSAFE)

    # The auth scheme: the session's authenticated ids; none -> InvalidACL.
    auth_acl = [ACL(Permissions.ALL, Id("auth", ""))]
    alice.create("/by-auth", b"", acl=auth_acl)
    eq(alice.get_acls("/by-auth")[0], [ACL(Permissions.ALL, Id("digest", ALICE))], "auth expands to the digest id")
    raises(InvalidACLError, bob.create, "/by-auth-anon", b"", acl=auth_acl)

    # An empty ACL list is accepted and stored as world:anyone:cdrwa.
    alice.create("/empty-acl", b"", acl=[])
    eq(bob.get_acls("/empty-acl")[0], OPEN_ACL_UNSAFE, "ACL of a node created with an empty ACL list")


main(body)
