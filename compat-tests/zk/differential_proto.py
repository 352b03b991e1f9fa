"""Jute encoding, request records and a raw socket client for the ZooKeeper
differential driver (differential.py).

Every request class here has kazoo's request interface (`type`,
`serialize()`, `deserialize(buffer, offset)`), so it can be sent through a
kazoo session with `client._call(request, async_result)`; kazoo then only
manages the session (handshake, pings, auth, xids, closeSession). The request
classes deliberately have no `watcher` attribute: kazoo never registers a
watcher for them, and the driver records every notification raw off the wire
(see differential.py).

kazoo 2.11 has no createContainer/createTTL/check/multiRead/getEphemerals/
getAllChildrenNumber/whoAmI/addWatch/removeWatches/checkWatches/setWatches,
and its Transaction decoder mishandles create2-typed results, so every request
is encoded here (the same wire format as kazoo's Create/Create2/Transaction
classes in kazoo.protocol.serialization, and zookeeper.jute).
"""

import select
import socket
import struct
import time

# ---------------------------------------------------------------- names

ERR_NAMES = {
    0: "Ok", -1: "SystemError", -2: "RuntimeInconsistency", -3: "DataInconsistency",
    -4: "ConnectionLoss", -5: "MarshallingError", -6: "Unimplemented",
    -7: "OperationTimeout", -8: "BadArguments", -12: "UnknownSession",
    -13: "NewConfigNoQuorum", -14: "ReconfigInProgress", -100: "APIError",
    -101: "NoNode", -102: "NoAuth", -103: "BadVersion", -108: "NoChildrenForEphemerals",
    -110: "NodeExists", -111: "NotEmpty", -112: "SessionExpired", -113: "InvalidCallback",
    -114: "InvalidACL", -115: "AuthFailed", -118: "SessionMoved", -119: "NotReadOnly",
    -120: "EphemeralOnLocalSession", -121: "NoWatcher", -122: "RequestTimeout",
    -123: "ReconfigDisabled", -124: "SessionClosedRequireSasl", -125: "QuotaExceeded",
    -127: "ThrottledOp",
}

EVENT_NAMES = {
    -1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
    4: "NodeChildrenChanged", 5: "DataWatchRemoved", 6: "ChildWatchRemoved",
    7: "PersistentWatchRemoved",
}

STATE_NAMES = {
    0: "Disconnected", 3: "SyncConnected", 4: "AuthFailed", 5: "ConnectedReadOnly",
    -112: "Expired", 7: "Closed", 6: "SaslAuthenticated",
}

OP_NAMES = {
    0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData",
    6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2",
    13: "check", 14: "multi", 15: "create2", 16: "reconfig", 17: "checkWatches",
    18: "removeWatches", 19: "createContainer", 20: "deleteContainer", 21: "createTTL",
    22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl", 103: "getEphemerals",
    104: "getAllChildrenNumber", 105: "setWatches2", 106: "addWatch", 107: "whoAmI",
    -10: "createSession", -11: "closeSession", -1: "error",
}


def err_name(code):
    return ERR_NAMES.get(code, "Code(%d)" % code)


# ---------------------------------------------------------------- jute

def p_int(v):
    return struct.pack("!i", v)


def p_long(v):
    return struct.pack("!q", v)


def p_bool(v):
    return b"\x01" if v else b"\x00"


def p_buf(b):
    return p_int(-1) if b is None else p_int(len(b)) + bytes(b)


def p_str(s):
    # Unlike kazoo's write_string, "" is sent as an empty string, not null.
    return p_int(-1) if s is None else p_buf(s.encode("utf-8"))


def p_acls(acls):
    if acls is None:
        return p_int(-1)
    out = bytearray(p_int(len(acls)))
    for perms, scheme, ident in acls:
        out += p_int(perms) + p_str(scheme) + p_str(ident)
    return bytes(out)


def p_strs(items):
    if items is None:
        return p_int(-1)
    out = bytearray(p_int(len(items)))
    for s in items:
        out += p_str(s)
    return bytes(out)


class Truncated(Exception):
    pass


class R:
    """A jute reader over `buf` from `off`."""

    def __init__(self, buf, off=0):
        self.buf = bytes(buf)
        self.off = off

    def _take(self, n):
        if n < 0 or self.off + n > len(self.buf):
            raise Truncated("need %d bytes at %d of %d" % (n, self.off, len(self.buf)))
        b = self.buf[self.off:self.off + n]
        self.off += n
        return b

    def remaining(self):
        return len(self.buf) - self.off

    def int(self):
        return struct.unpack("!i", self._take(4))[0]

    def long(self):
        return struct.unpack("!q", self._take(8))[0]

    def bool(self):
        return self._take(1)[0] != 0

    def buf_(self):
        n = self.int()
        if n < 0:
            return None
        return self._take(n)

    def str(self):
        b = self.buf_()
        return None if b is None else b.decode("utf-8", "replace")

    def stat(self):
        return struct.unpack("!qqqqiiiqiiq", self._take(68))

    def vec(self, f):
        n = self.int()
        if n < 0:
            return None
        return [f() for _ in range(n)]

    def acl(self):
        perms = self.int()
        scheme = self.str()
        ident = self.str()
        return (perms, scheme, ident)


# ---------------------------------------------------------------- requests

class Req:
    """A request with kazoo's request interface. `parse(reader)` turns the
    response body into a dict; bytes left over are reported as `_trailing`."""

    def __init__(self, type_, body, parse=None, path=None):
        self.type = type_
        self.body = body
        self.parse = parse
        self.path = path

    def serialize(self):
        return self.body

    def deserialize(self, buf, off):
        r = R(buf, off)
        out = self.parse(r) if self.parse else {}
        if r.remaining():
            out = dict(out)
            out["_trailing"] = r.remaining()
        if self.type == 14:
            # kazoo post-processes every multi (type 14) response by iterating
            # it (Transaction.unchroot): wrap the dict in a list.
            return [out]
        return out

    def __repr__(self):
        return "Req(%s,%r)" % (OP_NAMES.get(self.type, self.type), self.path)


def _parse_path(r):
    return {"path": r.str()}


def _parse_path_stat(r):
    return {"path": r.str(), "stat": r.stat()}


def _parse_stat(r):
    return {"stat": r.stat()}


def _parse_data_stat(r):
    return {"data": r.buf_(), "stat": r.stat()}


def _parse_acl_stat(r):
    return {"acl": r.vec(r.acl), "stat": r.stat()}


def _parse_children(r):
    return {"children": r.vec(r.str)}


def _parse_children_stat(r):
    return {"children": r.vec(r.str), "stat": r.stat()}


def _parse_rest(r):
    """Whatever the body holds: a Stat if exactly 68 bytes, an int if 4."""
    n = r.remaining()
    if n == 68:
        return {"stat": r.stat()}
    if n == 4:
        return {"int": r.int()}
    return {"body_len": n, "_body": r._take(n)} if n else {}


def create_body(path, data, acls, flags, ttl=None):
    b = p_str(path) + p_buf(data) + p_acls(acls) + p_int(flags)
    if ttl is not None:
        b += p_long(ttl)
    return b


def create(opcode, path, data, acls, flags, ttl=None):
    """opcode: 1 create, 15 create2, 19 createContainer, 21 createTTL (ttl required)."""
    if opcode == 21 and ttl is None:
        raise ValueError("createTTL needs a ttl")
    parse = _parse_path if opcode == 1 else _parse_path_stat
    return Req(opcode, create_body(path, data, acls, flags, ttl if opcode == 21 else None), parse, path)


def delete(path, version):
    return Req(2, p_str(path) + p_int(version), None, path)


def exists(path, watch):
    return Req(3, p_str(path) + p_bool(watch), _parse_stat, path)


def get_data(path, watch):
    return Req(4, p_str(path) + p_bool(watch), _parse_data_stat, path)


def set_data(path, data, version):
    return Req(5, p_str(path) + p_buf(data) + p_int(version), _parse_stat, path)


def get_acl(path):
    return Req(6, p_str(path), _parse_acl_stat, path)


def set_acl(path, acls, version):
    return Req(7, p_str(path) + p_acls(acls) + p_int(version), _parse_stat, path)


def get_children(path, watch):
    return Req(8, p_str(path) + p_bool(watch), _parse_children, path)


def get_children2(path, watch):
    return Req(12, p_str(path) + p_bool(watch), _parse_children_stat, path)


def sync(path):
    return Req(9, p_str(path), _parse_path, path)


def check(path, version):
    return Req(13, p_str(path) + p_int(version), _parse_rest, path)


def reconfig(joining, leaving, new_members, config_id):
    return Req(16, p_str(joining) + p_str(leaving) + p_str(new_members) + p_long(config_id),
               _parse_data_stat, None)


def check_watches(path, wtype):
    return Req(17, p_str(path) + p_int(wtype), _parse_rest, path)


def remove_watches(path, wtype):
    return Req(18, p_str(path) + p_int(wtype), _parse_rest, path)


def get_ephemerals(prefix):
    return Req(103, p_str(prefix), lambda r: {"ephemerals": r.vec(r.str)}, prefix)


def get_all_children_number(path):
    return Req(104, p_str(path), lambda r: {"number": r.int()}, path)


def who_am_i():
    return Req(107, b"", lambda r: {"clientInfo": r.vec(lambda: (r.str(), r.str()))}, None)


def add_watch(path, mode):
    return Req(106, p_str(path) + p_int(mode), _parse_rest, path)


def set_watches(rel_zxid, data, exist, child, persistent=None, recursive=None):
    b = p_long(rel_zxid) + p_strs(data) + p_strs(exist) + p_strs(child)
    if persistent is None and recursive is None:
        return Req(101, b, _parse_rest, None)
    return Req(105, b + p_strs(persistent or []) + p_strs(recursive or []), _parse_rest, None)


# A multi sub-op: (type, body). The constructors below return them.

def m_create(opcode, path, data, acls, flags, ttl=None):
    return (opcode, create_body(path, data, acls, flags, ttl if opcode == 21 else None))


def m_delete(path, version):
    return (2, p_str(path) + p_int(version))


def m_set_data(path, data, version):
    return (5, p_str(path) + p_buf(data) + p_int(version))


def m_check(path, version):
    return (13, p_str(path) + p_int(version))


def m_get_data(path):
    return (4, p_str(path) + p_bool(False))


def m_get_children(path):
    return (8, p_str(path) + p_bool(False))


def _parse_multi(r):
    results = []
    while True:
        typ = r.int()
        done = r.bool()
        err = r.int()
        if done:
            return {"results": results, "end": (typ, err)}
        if typ == 1:
            results.append({"type": 1, "path": r.str()})
        elif typ in (15, 19, 21):
            results.append({"type": typ, "path": r.str(), "stat": r.stat()})
        elif typ == 2:
            results.append({"type": 2})
        elif typ == 5:
            results.append({"type": 5, "stat": r.stat()})
        elif typ == 13:
            results.append({"type": 13})
        elif typ == 4:
            results.append({"type": 4, "data": r.buf_(), "stat": r.stat()})
        elif typ == 8:
            results.append({"type": 8, "children": r.vec(r.str)})
        elif typ == -1:
            results.append({"type": -1, "hdr_err": err, "err": r.int()})
        else:
            raise Truncated("unknown multi result type %d" % typ)


def multi(ops, opcode=14):
    b = bytearray()
    for typ, body in ops:
        b += p_int(typ) + p_bool(False) + p_int(-1) + body
    b += p_int(-1) + p_bool(True) + p_int(-1)
    return Req(opcode, bytes(b), _parse_multi, None)


# ---------------------------------------------------------------- raw client

class Closed(Exception):
    pass


class RawZk:
    """A bare ZooKeeper connection for probes that kazoo cannot send (or that
    make the server close the connection). Every wait is bounded."""

    def __init__(self, host, port, timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.events = []
        self.session_id = 0
        self.passwd = b"\x00" * 16

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_frame(self, body):
        self.sock.sendall(p_int(len(body)) + body)

    def _read_exact(self, n, deadline):
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("read timeout")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                raise TimeoutError("read timeout")
            try:
                chunk = self.sock.recv(n - len(out))
            except (ConnectionResetError, OSError):
                chunk = b""
            if not chunk:
                raise Closed("closed after %d of %d bytes" % (len(out), n))
            out += chunk
        return bytes(out)

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        n = struct.unpack("!i", self._read_exact(4, deadline))[0]
        return self._read_exact(n, deadline)

    def handshake(self, timeout_ms, session_id=0, passwd=b"\x00" * 16, last_zxid=0,
                  read_only_byte=True):
        body = p_int(0) + p_long(last_zxid) + p_int(timeout_ms) + p_long(session_id) + p_buf(passwd)
        if read_only_byte:
            body += b"\x00"
        self.send_frame(body)
        resp = self.read_frame()
        r = R(resp)
        out = {"len": len(resp), "protocolVersion": r.int(), "timeOut": r.int()}
        sid = r.long()
        pw = r.buf_()
        out["sessionId_zero"] = sid == 0
        out["passwd_len"] = None if pw is None else len(pw)
        out["passwd_zero"] = pw is not None and pw == b"\x00" * len(pw)
        if r.remaining():
            out["readOnly"] = r.bool()
        if r.remaining():
            out["_trailing"] = r.remaining()
        self.session_id = sid
        self.passwd = pw
        return out

    def request(self, xid, opcode, body, timeout=None):
        """Sends one request and returns (reply xid, reply zxid, err, body
        bytes) of the first non-notification frame; notifications are kept in
        self.events."""
        self.send_frame(p_int(xid) + p_int(opcode) + body)
        return self.read_reply(timeout)

    def read_reply(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = max(0.01, deadline - time.monotonic())
            frame = self.read_frame(left)
            r = R(frame)
            xid, zxid, err = r.int(), r.long(), r.int()
            if xid == -1:
                self.events.append((r.int(), r.int(), r.str()))
                continue
            return xid, zxid, err, frame[16:]

    def closed_by_peer(self, wait=2.0):
        """True if the server closes the connection within `wait` seconds
        (any data that arrives first is skipped)."""
        deadline = time.monotonic() + wait
        try:
            while True:
                self.read_frame(max(0.01, deadline - time.monotonic()))
        except Closed:
            return True
        except TimeoutError:
            return False
        except (struct.error, OSError):
            return True

    def close_session(self, xid=1000):
        try:
            xid_, _z, err, _b = self.request(xid, -11, b"")
            return err_name(err)
        except Closed:
            return "closed"
        except TimeoutError:
            return "timeout"
        finally:
            self.close()


def four_letter(host, port, word, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(word.encode())
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], max(0.01, deadline - time.monotonic()))
            if not r:
                break
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        s.close()
