#!/usr/bin/env python3
"""Seeded, deterministic differential workload for a ZooKeeper server.

    differential.py HOST:PORT --seed N [--ops 1000] [--out FILE]

Runs the same random workload against any ZooKeeper-compatible server and
writes a JSON-lines transcript (one operation and its outcome per line),
NORMALIZED so that two correct servers give byte-identical transcripts. The
test compat-tests/tests/differential_zk.rs runs it against ZooKeeper 3.8 and
against Synod's gateway and diffs the two transcripts.

The driver is single threaded: one operation at a time, round-robin over
several kazoo sessions (4 plain + 2 that later expire; more are opened when
some are closed), on a small path space so operations collide and fail
often. kazoo only manages sessions (handshake, pings, auth, closeSession):
every request is encoded by differential_proto.py and sent with
`client._call(request, async_result)`; notifications are recorded raw off the
wire by a hook on kazoo's connection. A few probes that kazoo cannot send (or
that make the server drop the connection) use a raw socket.

Normalization (what makes two correct servers byte-identical):
  * errors by name (`"err":"NoNode"`); unknown codes as `Code(n)`;
  * data: null (absent), printable ASCII as is, other bytes as `hex:..`,
    anything longer than 64 bytes as `len:N,sha1:..`;
  * children sorted; getEphemerals sorted; ACLs in server order;
  * Stat: czxid/mzxid/pzxid replaced by labels naming where the value was
    first seen: `z<n>` (`z<n>.<k>` for the k-th further new value there), n
    counting the printed requests (0 and -1 stay as they are). At the end the
    `zxid_order` lines list the labels sorted by raw zxid, so the ORDER of all
    zxids is compared too: two transcripts are equal iff their
    rank-normalized forms are, while gaps (failed writes and sessions consume
    zxids) are ignored, and one divergence does not relabel what follows;
    ctime/mtime: `0` when 0 (the built-in nodes), else `t` when plausible
    (wall clock of this run +-10 min); the end checks that each zxid maps to
    one time and that times never decrease with zxid (`time_checks`);
    ephemeralOwner: the owning driver session's label (`s3`), 0 if none,
    `other` if unknown;
  * session ids, passwords and reply-header zxids are never printed. The
    driver checks instead that reply zxids never decrease within a session,
    that a reply's zxid is >= every zxid in the Stats it carries and that the
    reply zxid of create2/createContainer/createTTL is the new czxid and of
    setData the new mzxid (any violation is printed as a `violation` line
    where it happens);
  * watch events: per session, the ordered (type, state, path) list received,
    printed after a sync on that session at every checkpoint (every 100 ops),
    before a session is closed or killed, and at the end. The events of a
    session close or expiry (one transaction deleting several ephemerals) and
    of the container/TTL reaper are printed sorted, between two checkpoints:
    ZooKeeper's order there is the iteration order of a Java hash set (and
    the reaper's is timing-dependent), not something to reproduce.

Every wait is bounded; a connection loss, timeout or unexpected exception is
an outcome line, never a crash (a session that timed out is marked broken
and its later operations are recorded as `SessionBroken`).

Not driven through kazoo: standalone `check` (opcode 13), because ZooKeeper
3.8.0 never answers a successful one (a raw-socket probe records that), and
`ping`, `sasl`, `deleteContainer`, unknown opcodes, bad frames (raw probes
too). Never sent: `createTTL` with a non-TTL mode and a negative ttl, which
crashes ZooKeeper 3.8.0 (SyncThread "ttl must be positive", the JVM exits).

Run it against two fresh ZooKeepers with differential_selfcheck.py: the
transcripts must be identical.
"""

import argparse
import base64
import hashlib
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
import random

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import differential_proto as zp  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import EXCEPTIONS, ZookeeperError, ConnectionClosedError  # noqa: E402
from kazoo.handlers.threading import KazooTimeoutError  # noqa: E402
from kazoo.protocol.serialization import Watch  # noqa: E402

OP_TIMEOUT = 10.0          # one request
CONNECT_TIMEOUT = 15.0     # one session handshake
EXPIRY_WAIT = 40.0         # an abandoned session's ephemerals must vanish within this
BACKGROUND_WAIT = 20.0     # container / TTL reaper
RUN_BUDGET = 300.0         # the whole run; later operations are recorded as skipped
CHECKPOINT_EVERY = 100

NORMAL_TIMEOUT_MS = 10000
EXPIRING_TIMEOUT_MS = 4000

LONG_TTL = 3_600_000
MAX_TTL = (1 << 40) - 1

WORLD_ALL = [(31, "world", "anyone")]


def digest_id(user, pw):
    h = base64.b64encode(hashlib.sha1(("%s:%s" % (user, pw)).encode()).digest()).decode()
    return "%s:%s" % (user, h)


USERS = {"user1": "pw1", "user2": "pw2", "user3": "pw3"}
D1 = digest_id("user1", "pw1")
D2 = digest_id("user2", "pw2")

# Every restrictive ACL leaves ADMIN to some identity a live session holds,
# so the random workload can always open a node up again.
ACLS = {
    "open": WORLD_ALL,
    "read+d1": [(1, "world", "anyone"), (31, "digest", D1)],
    "creator": [(31, "auth", "")],
    "d1": [(31, "digest", D1)],
    "read+d2": [(1, "world", "anyone"), (31, "digest", D2)],
    "ip": [(31, "ip", "127.0.0.1")],
    "ipnet+d2": [(31, "ip", "10.0.0.0/8"), (1, "world", "anyone"), (16, "digest", D2)],
    "dup": [(31, "world", "anyone"), (31, "world", "anyone")],
    "nodelete": [(23, "world", "anyone")],
    "nocreate": [(27, "world", "anyone")],
    "d1+d2": [(3, "digest", D1), (31, "digest", D2)],
    "empty": [],
    "badscheme": [(31, "foo", "bar")],
}
ACL_WEIGHTS = [("open", 50), ("read+d1", 5), ("creator", 6), ("d1", 5), ("read+d2", 5),
               ("ip", 4), ("ipnet+d2", 3), ("dup", 3), ("nodelete", 4), ("nocreate", 4),
               ("d1+d2", 3), ("empty", 2), ("badscheme", 2)]

FIXED = ["/a", "/b", "/e", "/a/x", "/a/y", "/b/x", "/e/x", "/a/x/p", "/b/x/p"]
# Containers are created only at these: no path of the workload is below
# them, so a container never gets a child and the background reaper (which
# deletes empty containers that once had children) never races the workload.
LEAVES = ["/a/x/p", "/b/x/p"]
SEQ_PREFIXES = ["/a/s-", "/a/x/s-", "/b/", "/e/q-", "/q-"]
# Usually absent (never below a container: see LEAVES).
MISSING = ["/a/zz", "/a/x/zz", "/e/zz", "/b/x/zz", "/zz"]
SPECIAL_READ = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/nope", "/nope/x"]
SPECIAL_WRITE = ["/", "/zookeeper", "/zookeeper/config", "/nope/x"]
EPH_PREFIXES = ["/", "", "/a", "/a/", "/a/x", "/e", "/e/", "/q", "/nope", "a"]
DATA = [b"", b"v1", b"v2", b"hello", None, b"\x00\x01\xfe\xff", b"x" * 300, b"v1"]


# ---------------------------------------------------------------- output

class Out:
    def __init__(self, fh):
        self.fh = fh
        self.lines = 0

    def emit(self, obj):
        self.fh.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=True) + "\n")
        self.lines += 1


def ndata(b):
    if b is None:
        return None
    b = bytes(b)
    if len(b) > 64:
        return "len:%d,sha1:%s" % (len(b), hashlib.sha1(b).hexdigest()[:16])
    if all(0x20 <= c < 0x7f for c in b) and not b.startswith(b"hex:") and not b.startswith(b"len:"):
        return b.decode("ascii")
    return "hex:" + b.hex()


class Norm:
    """zxid labels, session labels and the time checks of one run."""

    def __init__(self):
        self.labels = {}      # raw zxid -> label
        self.sids = {}        # raw session id -> driver label
        self.times = {}       # raw zxid -> set of times (ctime for czxid, mtime for mzxid)
        self.t0 = int(time.time() * 1000) - 600_000
        self.site = 0         # number of the request being normalized
        self.k = 0            # new zxids seen in it so far

    def begin_site(self):
        """Called once per printed request (whatever its outcome), so that a
        label depends only on where its zxid was first seen, not on how many
        were seen before: one divergence does not relabel the rest."""
        self.site += 1
        self.k = 0

    def z(self, v):
        if v == 0 or v == -1:
            return v
        if v < 0:
            return "neg"
        if v not in self.labels:
            self.labels[v] = "z%d" % self.site if self.k == 0 else "z%d.%d" % (self.site, self.k)
            self.k += 1
        return self.labels[v]

    def t(self, v):
        if v == 0:
            return 0
        if self.t0 <= v <= int(time.time() * 1000) + 600_000:
            return "t"
        return "implausible"

    def owner(self, eo):
        if eo == 0:
            return 0
        return self.sids.get(eo, "other")

    def stat(self, st):
        czxid, mzxid, ctime, mtime, version, cversion, aversion, eo, dlen, nchild, pzxid = st
        if czxid > 0:
            self.times.setdefault(czxid, set()).add(ctime)
        if mzxid > 0:
            self.times.setdefault(mzxid, set()).add(mtime)
        return {"czxid": self.z(czxid), "mzxid": self.z(mzxid), "pzxid": self.z(pzxid),
                "ctime": self.t(ctime), "mtime": self.t(mtime), "version": version,
                "cversion": cversion, "aversion": aversion, "ephemeralOwner": self.owner(eo),
                "dataLength": dlen, "numChildren": nchild}

    def result(self, d):
        """Normalizes a parsed response dict (recursively for multi)."""
        out = {}
        for k, v in d.items():
            if k == "stat":
                out[k] = self.stat(v)
            elif k == "data":
                out[k] = ndata(v)
            elif k in ("children", "ephemerals"):
                out[k] = None if v is None else sorted(v)
            elif k == "acl":
                out[k] = None if v is None else [list(a) for a in v]
            elif k == "results":
                out[k] = [self.result(x) for x in v]
            elif k == "type":
                out[k] = zp.OP_NAMES.get(v, v)
            elif k in ("err", "hdr_err"):
                out[k] = zp.err_name(v)
            elif k == "_body":
                out[k] = ndata(v)
            elif k == "clientInfo":
                out[k] = None if v is None else [list(x) for x in v]
            else:
                out[k] = v
        return out

    def zxid_order(self):
        return [self.labels[z] for z in sorted(self.labels)]

    def time_checks(self):
        multi = sorted(self.labels[z] for z, ts in self.times.items() if len(ts) > 1)
        inversions = []
        last_t = None
        for z in sorted(self.times):
            t = min(self.times[z])
            if last_t is not None and t < last_t:
                inversions.append(self.labels.get(z, z))
            last_t = max(self.times[z]) if last_t is None else max(last_t, max(self.times[z]))
        return {"zxids_with_two_times": multi[:20], "time_decreases_at": inversions[:20]}


def ensure_exception(code):
    if code not in EXCEPTIONS:
        EXCEPTIONS[code] = type("ZkCode%d" % abs(code), (ZookeeperError,), {"code": code})


for _c in list(zp.ERR_NAMES) + list(range(-130, 0)):
    ensure_exception(_c)


# ---------------------------------------------------------------- sessions

class OrderedAuth(list):
    """A list with set's `add`, for kazoo's auth_data."""

    def add(self, item):
        if item not in self:
            self.append(item)


class Sess:
    """One kazoo session of the driver, with its wire-level hooks."""

    def __init__(self, drv, label, timeout_ms, auths, client_id=None, last_zxid=0):
        self.drv = drv
        self.label = label
        self.timeout_ms = timeout_ms
        self.auths = list(auths)
        self.events = []          # (type, state, path) in arrival order
        self.dumped = 0           # how many events were printed already
        self.violations = []      # found by the connection thread, printed by the driver
        self.last_reply_zxid = last_zxid
        self.broken = False
        self.alive = False
        self.drops = 0
        self.sid = None
        self.passwd = None
        self.lock = threading.Lock()
        self.client = KazooClient(
            hosts=drv.hostport, timeout=timeout_ms / 1000.0, client_id=client_id,
            connection_retry={"max_tries": -1, "delay": 0.05, "backoff": 1.5, "max_delay": 1.0},
            randomize_hosts=False)
        # kazoo keeps auth_data in a set and re-sends it on every (re)connect
        # in iteration order, which depends on string hashing: keep it ordered.
        self.client.auth_data = OrderedAuth(
            ("digest", "%s:%s" % (u, USERS[u])) for u in self.auths)
        self._install_hooks()
        self.client.add_listener(self._on_state)

    def _on_state(self, state):
        if state == "SUSPENDED" or state == "LOST":
            with self.lock:
                self.drops += 1

    def _install_hooks(self):
        conn = self.client._connection
        orig_rr = conn._read_response
        orig_we = conn._read_watch_event
        client = self.client

        def read_response(header, buffer, offset):
            try:
                ensure_exception(header.err)
                req = client._pending[0][0] if client._pending else None
                if req is not None and isinstance(req, zp.Req):
                    req.reply = (header.zxid, header.err)
                with self.lock:
                    if header.zxid < self.last_reply_zxid:
                        self.violations.append({
                            "violation": "reply zxid decreased",
                            "op": zp.OP_NAMES.get(getattr(req, "type", None), "?"),
                            "err": zp.err_name(header.err)})
                    else:
                        self.last_reply_zxid = header.zxid
            except Exception as e:  # never break kazoo's connection thread
                self.violations.append({"violation": "hook error", "exc": repr(e)})
            return orig_rr(header, buffer, offset)

        def read_watch_event(buffer, offset):
            try:
                w, _ = Watch.deserialize(buffer, offset)
                with self.lock:
                    self.events.append((w.type, w.state, w.path))
            except Exception as e:
                self.violations.append({"violation": "undecodable notification", "exc": repr(e)})
            return orig_we(buffer, offset)

        conn._read_response = read_response
        conn._read_watch_event = read_watch_event

    def start(self):
        try:
            self.client.start(timeout=CONNECT_TIMEOUT)
        except Exception as e:
            self.broken = True
            return {"err": "ConnectFailed", "exc": type(e).__name__}
        self.alive = True
        self.sid = self.client._session_id
        self.passwd = self.client._session_passwd
        self.drv.norm.sids[self.sid] = self.label
        return {"ok": True}

    def call(self, req, timeout=OP_TIMEOUT):
        """Sends `req`; returns (outcome dict, reply zxid or None)."""
        if self.broken:
            return {"err": "SessionBroken"}, None
        if not self.alive:
            return {"err": "SessionGone"}, None
        ar = self.client.handler.async_result()
        try:
            self.client._call(req, ar)
        except Exception as e:
            return {"err": "ClientException", "exc": type(e).__name__}, None
        try:
            v = ar.get(timeout=timeout)
        except KazooTimeoutError:
            self.broken = True
            return {"err": "Timeout"}, None
        except ConnectionClosedError:
            return {"err": "ConnectionClosed"}, None
        except ZookeeperError as e:
            return {"err": zp.err_name(getattr(e, "code", 1))}, getattr(req, "reply", (None,))[0]
        except Exception as e:
            return {"err": "Exception", "exc": type(e).__name__, "msg": str(e)[:200]}, None
        finally:
            if self.client._session_id not in (None, self.sid) and self.alive:
                # kazoo silently started a new session (the old one expired).
                self.drv.out.emit({"violation": "session replaced", "s": self.label})
                self.drv.norm.sids[self.client._session_id] = self.label + "'"
                self.sid = self.client._session_id
        zxid = getattr(req, "reply", (None,))[0]
        if req.type == 14 and isinstance(v, list) and len(v) == 1:
            v = v[0]
        if v is None and req.type == 3:
            return {"err": "NoNode"}, zxid
        return {"ok": v if v is not None else {}}, zxid

    def new_events(self):
        with self.lock:
            ev = self.events[self.dumped:]
            self.dumped = len(self.events)
        return [[zp.EVENT_NAMES.get(t, t), zp.STATE_NAMES.get(s, s), p] for t, s, p in ev]

    def take_violations(self):
        with self.lock:
            v, self.violations = self.violations, []
        return v

    def stop(self):
        """closeSession, then release the client."""
        self.alive = False
        try:
            self.client.stop()
            self.client.close()
            return "ok"
        except Exception as e:
            return "exception:" + type(e).__name__

    def kill(self):
        """Cuts the connection without closeSession and stops kazoo from
        reconnecting: the server sees the socket close and must expire the
        session after its timeout."""
        self.alive = False
        c = self.client
        c._stopped.set()
        sock = c._connection._socket
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        ok = c._connection.connection_stopped.wait(10)
        try:
            c.handler.stop()
        except Exception:
            pass
        return ok


# ---------------------------------------------------------------- driver

class Driver:
    def __init__(self, hostport, seed, nops, out):
        self.hostport = hostport
        host, _, port = hostport.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.seed = seed
        self.nops = nops
        self.out = out
        self.norm = Norm()
        self.rng = random.Random(seed)
        self.sessions = []      # live sessions, round-robin order
        self.all_sessions = []
        self.next_label = 1
        self.seq_paths = []     # sequential nodes created so far (as targets)
        self.t_start = time.monotonic()
        self.summary = {}
        self.op_index = 0
        self.in_workload = False

    # ---- helpers

    def emit(self, obj):
        self.out.emit(obj)

    def new_session(self, auths, timeout_ms=NORMAL_TIMEOUT_MS):
        label = "s%d" % self.next_label
        self.next_label += 1
        s = Sess(self, label, timeout_ms, auths)
        r = s.start()
        self.emit({"op": "open_session", "s": label, "auth": auths, "timeout": timeout_ms, "r": r})
        self.sessions.append(s)
        self.all_sessions.append(s)
        return s

    def flush_violations(self):
        for s in self.all_sessions:
            for v in s.take_violations():
                v = dict(v)
                v["s"] = s.label
                v["i"] = self.op_index
                self.emit(v)

    def do(self, s, req, line, check=None):
        """Runs `req` on session `s` and emits `line` with the outcome."""
        self.norm.begin_site()
        head = {"i": self.op_index, "s": s.label} if self.in_workload else {"s": s.label}
        head.update(line)
        line = head
        res, zxid = s.call(req)
        if "ok" in res:
            raw = res["ok"]
            if check:
                check(raw, zxid, line)
            self.zxid_checks(raw, zxid, req, s)
            line["r"] = self.norm.result(raw)
        else:
            line["r"] = res
        key = line.get("op", "?") + ":" + (res.get("err", "ok") if isinstance(res, dict) else "?")
        self.summary[key] = self.summary.get(key, 0) + 1
        self.emit(line)
        self.flush_violations()
        return res

    def zxid_checks(self, raw, zxid, req, s):
        """The reply zxid covers every Stat in the reply; a write's reply
        zxid is its own zxid."""
        if zxid is None:
            return
        stats = []

        def collect(d):
            if isinstance(d, dict):
                if "stat" in d:
                    stats.append(d["stat"])
                for x in d.get("results", []) or []:
                    collect(x)
        collect(raw)
        for st in stats:
            if max(st[0], st[1], st[10]) > zxid:
                self.emit({"violation": "stat zxid newer than reply zxid", "s": s.label,
                           "op": zp.OP_NAMES.get(req.type), "i": self.op_index})
                break
        if req.type in (15, 19, 21) and stats and stats[0][0] != zxid:
            self.emit({"violation": "create2 reply zxid != czxid", "s": s.label, "i": self.op_index})
        if req.type == 5 and stats and stats[0][1] != zxid:
            self.emit({"violation": "setData reply zxid != mzxid", "s": s.label, "i": self.op_index})

    def over_budget(self):
        return time.monotonic() - self.t_start > RUN_BUDGET

    def pick(self, seq, k):
        return seq[k % len(seq)]

    def weighted(self, pairs):
        total = sum(w for _, w in pairs)
        r = self.rng.random() * total
        for v, w in pairs:
            r -= w
            if r < 0:
                return v
        return pairs[-1][0]

    def pick_path(self, write=False):
        r = self.rng.random()
        k = self.rng.randrange(1 << 30)
        if r < 0.70:
            return self.pick(FIXED, k)
        if r < 0.90:
            return self.pick(self.seq_paths, k) if self.seq_paths else self.pick(FIXED, k)
        if r < 0.96:
            return self.pick(SPECIAL_WRITE if write else SPECIAL_READ, k)
        return self.pick(MISSING, k)

    def version_of(self, s, path, field="version"):
        """The current version (or aversion/cversion) of `path` read on `s`
        (0 if absent); not printed on its own."""
        res, _ = s.call(zp.exists(path, False))
        if "ok" in res and "stat" in res["ok"]:
            st = res["ok"]["stat"]
            return {"version": st[4], "cversion": st[5], "aversion": st[6]}[field]
        return 0

    def pick_version(self, s, path, choices, field="version"):
        c = self.pick(choices, self.rng.randrange(1 << 30))
        if c == "cur":
            return c, self.version_of(s, path, field)
        if c == "cur+1":
            return c, self.version_of(s, path, field) + 1
        return c, c

    def note_created(self, res, flags):
        if "ok" in res and flags in (2, 3, 6):
            p = res["ok"].get("path")
            if p and p not in self.seq_paths:
                self.seq_paths.append(p)

    # ---- random operations

    def op_create(self, s):
        opcode = self.pick([1, 1, 15, 15, 15], self.rng.randrange(1 << 30))
        flags = self.weighted([(0, 30), (1, 22), (2, 12), (3, 10), (4, 4)])
        data = self.pick(DATA, self.rng.randrange(1 << 30))
        acl = self.weighted(ACL_WEIGHTS)
        if flags in (2, 3):
            path = self.pick(SEQ_PREFIXES, self.rng.randrange(1 << 30))
        elif flags == 4:
            path = self.pick(LEAVES, self.rng.randrange(1 << 30))
        else:
            path = self.pick_path(write=True)
        req = zp.create(opcode, path, data, ACLS[acl], flags)
        res = self.do(s, req, {"op": zp.OP_NAMES[opcode], "path": path, "flags": flags,
                                "data": ndata(data), "acl": acl})
        self.note_created(res, flags)

    def op_create_container(self, s):
        path = self.pick(LEAVES, self.rng.randrange(1 << 30))
        flags = self.pick([4, 4, 4, 0], self.rng.randrange(1 << 30))
        data = self.pick(DATA, self.rng.randrange(1 << 30))
        self.do(s, zp.create(19, path, data, WORLD_ALL, flags),
                {"op": "createContainer", "path": path, "flags": flags, "data": ndata(data)})

    def op_create_ttl(self, s):
        flags = self.pick([5, 5, 6], self.rng.randrange(1 << 30))
        ttl = self.pick([LONG_TTL] * 6 + [0, MAX_TTL + 1], self.rng.randrange(1 << 30))
        data = self.pick(DATA, self.rng.randrange(1 << 30))
        path = self.pick(SEQ_PREFIXES, self.rng.randrange(1 << 30)) if flags == 6 \
            else self.pick_path(write=True)
        res = self.do(s, zp.create(21, path, data, WORLD_ALL, flags, ttl),
                      {"op": "createTTL", "path": path, "flags": flags, "ttl": ttl,
                       "data": ndata(data)})
        self.note_created(res, flags)

    def op_delete(self, s):
        path = self.pick_path(write=True)
        vc, v = self.pick_version(s, path, [-1, -1, -1, 0, 1, "cur", "cur"])
        self.do(s, zp.delete(path, v), {"op": "delete", "path": path, "version": v, "vchoice": vc})

    def op_exists(self, s):
        path = self.pick_path()
        w = self.rng.random() < 0.4
        self.do(s, zp.exists(path, w), {"op": "exists", "path": path, "watch": w})

    def op_get_data(self, s):
        path = self.pick_path()
        w = self.rng.random() < 0.4
        self.do(s, zp.get_data(path, w), {"op": "getData", "path": path, "watch": w})

    def op_set_data(self, s):
        path = self.pick_path(write=True)
        data = self.pick(DATA, self.rng.randrange(1 << 30))
        vc, v = self.pick_version(s, path, [-1, -1, 0, 1, 2, "cur", "cur", "cur+1"])
        self.do(s, zp.set_data(path, data, v), {"op": "setData", "path": path,
                                                 "data": ndata(data), "version": v, "vchoice": vc})

    def op_get_acl(self, s):
        path = self.pick_path()
        self.do(s, zp.get_acl(path), {"op": "getACL", "path": path})

    def op_set_acl(self, s):
        path = self.pick_path(write=True)
        acl = self.weighted([("open", 60)] + ACL_WEIGHTS[1:])
        vc, v = self.pick_version(s, path, [-1, -1, 0, 1, "cur"], "aversion")
        self.do(s, zp.set_acl(path, ACLS[acl], v), {"op": "setACL", "path": path, "acl": acl,
                                                     "version": v, "vchoice": vc})

    def op_get_children(self, s):
        path = self.pick_path()
        w = self.rng.random() < 0.4
        self.do(s, zp.get_children(path, w), {"op": "getChildren", "path": path, "watch": w})

    def op_get_children2(self, s):
        path = self.pick_path()
        w = self.rng.random() < 0.4
        self.do(s, zp.get_children2(path, w), {"op": "getChildren2", "path": path, "watch": w})

    def op_sync(self, s):
        path = self.pick_path()
        self.do(s, zp.sync(path), {"op": "sync", "path": path})

    def multi_subop(self, s, earlier=()):
        """One op of a multi; `earlier` are the paths of the ops before it, which it
        names again now and then (a multi that changes one znode twice: etcd keeps one
        change per key in a txn, so the gateway has to say the rest)."""
        kind = self.weighted([("create", 5), ("delete", 3), ("setData", 3), ("check", 3)])
        data = self.pick(DATA, self.rng.randrange(1 << 30))
        again = self.pick(list(earlier), self.rng.randrange(1 << 30)) \
            if earlier and self.rng.random() < 0.35 else None
        if kind == "create":
            opcode = self.pick([1, 15, 15, 21, 19], self.rng.randrange(1 << 30))
            flags = self.weighted([(0, 4), (1, 3), (2, 2), (3, 1)])
            ttl = None
            if opcode == 21:
                flags = self.pick([5, 6], self.rng.randrange(1 << 30))
                ttl = LONG_TTL
            if opcode == 19:
                flags = 4
                path = self.pick(LEAVES, self.rng.randrange(1 << 30))
            elif flags in (2, 3, 6):
                path = self.pick(SEQ_PREFIXES, self.rng.randrange(1 << 30))
            else:
                path = again or self.pick_path(write=True)
            desc = {"t": zp.OP_NAMES[opcode], "path": path, "flags": flags, "data": ndata(data)}
            if ttl:
                desc["ttl"] = ttl
            return zp.m_create(opcode, path, data, WORLD_ALL, flags, ttl), desc, flags
        path = again or self.pick_path(write=True)
        vc, v = self.pick_version(s, path, [-1, -1, 0, 1, "cur", "cur"])
        if kind == "delete":
            return zp.m_delete(path, v), {"t": "delete", "path": path, "version": v}, None
        if kind == "setData":
            return zp.m_set_data(path, data, v), {"t": "setData", "path": path, "version": v,
                                                  "data": ndata(data)}, None
        return zp.m_check(path, v), {"t": "check", "path": path, "version": v}, None

    def op_multi(self, s):
        n = self.pick([1, 2, 2, 3, 3, 4], self.rng.randrange(1 << 30))
        subs = []
        for _ in range(n):
            subs.append(self.multi_subop(s, [d["path"] for _, d, _ in subs]))
        res = self.do(s, zp.multi([x[0] for x in subs]),
                      {"op": "multi", "ops": [x[1] for x in subs]})
        if "ok" in res:
            for (sub, desc, flags), r in zip(subs, res["ok"].get("results", [])):
                if flags in (2, 3, 6) and r.get("path"):
                    if r["path"] not in self.seq_paths:
                        self.seq_paths.append(r["path"])

    def op_multi_read(self, s):
        n = self.pick([1, 2, 3, 4], self.rng.randrange(1 << 30))
        ops, descs = [], []
        for _ in range(n):
            path = self.pick_path()
            if self.rng.random() < 0.5:
                ops.append(zp.m_get_data(path))
                descs.append({"t": "getData", "path": path})
            else:
                ops.append(zp.m_get_children(path))
                descs.append({"t": "getChildren", "path": path})
        self.do(s, zp.multi(ops, 22), {"op": "multiRead", "ops": descs})

    def op_get_ephemerals(self, s):
        prefix = self.pick(EPH_PREFIXES, self.rng.randrange(1 << 30))
        self.do(s, zp.get_ephemerals(prefix), {"op": "getEphemerals", "prefix": prefix})

    def op_all_children(self, s):
        path = self.pick_path()
        self.do(s, zp.get_all_children_number(path), {"op": "getAllChildrenNumber", "path": path})

    def op_who_am_i(self, s):
        self.do(s, zp.who_am_i(), {"op": "whoAmI"})

    def op_add_watch(self, s):
        path = self.pick_path()
        mode = self.pick([0, 1], self.rng.randrange(1 << 30))
        self.do(s, zp.add_watch(path, mode), {"op": "addWatch", "path": path, "mode": mode})

    def op_remove_watches(self, s):
        path = self.pick_path()
        t = self.pick([1, 2, 3, 3], self.rng.randrange(1 << 30))
        self.do(s, zp.remove_watches(path, t), {"op": "removeWatches", "path": path, "type": t})

    def op_check_watches(self, s):
        path = self.pick_path()
        t = self.pick([1, 2, 3], self.rng.randrange(1 << 30))
        self.do(s, zp.check_watches(path, t), {"op": "checkWatches", "path": path, "type": t})

    def op_set_watches(self, s):
        rel = self.pick(["0", "last"], self.rng.randrange(1 << 30))
        lists = [[self.pick_path() for _ in range(self.rng.randrange(3))] for _ in range(5)]
        two = self.rng.random() < 0.5
        zxid = 0 if rel == "0" else s.last_reply_zxid
        if two:
            req = zp.set_watches(zxid, lists[0], lists[1], lists[2], lists[3], lists[4])
        else:
            req = zp.set_watches(zxid, lists[0], lists[1], lists[2])
        line = {"op": "setWatches2" if two else "setWatches", "rel": rel, "data": lists[0],
                "exist": lists[1], "child": lists[2]}
        if two:
            line["persistent"] = lists[3]
            line["recursive"] = lists[4]
        self.do(s, req, line)

    def op_add_auth(self, s):
        user = self.pick(sorted(USERS), self.rng.randrange(1 << 30))
        line = {"i": self.op_index, "s": s.label, "op": "addAuth", "scheme": "digest", "user": user}
        if s.broken or not s.alive:
            line["r"] = {"err": "SessionBroken" if s.broken else "SessionGone"}
        else:
            try:
                s.client.add_auth_async("digest", "%s:%s" % (user, USERS[user])).get(timeout=OP_TIMEOUT)
                if user not in s.auths:
                    s.auths.append(user)
                line["r"] = {"ok": True}
            except ZookeeperError as e:
                line["r"] = {"err": zp.err_name(getattr(e, "code", 1))}
            except Exception as e:
                line["r"] = {"err": "Exception", "exc": type(e).__name__}
        self.emit(line)

    def op_reconfig(self, s):
        self.do(s, zp.reconfig("", "", "", -1), {"op": "reconfig"})

    OPS = [("op_create", 16), ("op_create_container", 2), ("op_create_ttl", 3),
           ("op_delete", 12), ("op_exists", 8), ("op_get_data", 8), ("op_set_data", 10),
           ("op_get_acl", 3), ("op_set_acl", 4), ("op_get_children", 5),
           ("op_get_children2", 4), ("op_sync", 2), ("op_multi", 7), ("op_multi_read", 2),
           ("op_get_ephemerals", 2), ("op_all_children", 2), ("op_who_am_i", 1),
           ("op_add_watch", 2), ("op_remove_watches", 2), ("op_check_watches", 2),
           ("op_set_watches", 1), ("op_add_auth", 0.5), ("op_reconfig", 0.3)]

    # ---- checkpoints and scenarios

    def sync_and_dump(self, s, why, sort=False):
        res, _ = s.call(zp.sync("/"))
        events = s.new_events()
        line = {"events": s.label, "at": why, "sync": res.get("err", "ok"),
                "list": sorted(events) if sort else events}
        if sort:
            line["sorted"] = True
        with s.lock:
            drops, s.drops = s.drops, 0
        if drops:
            line["connection_drops"] = drops
        self.emit(line)
        self.flush_violations()

    def checkpoint(self, why, sort=False):
        for s in list(self.sessions):
            self.sync_and_dump(s, why, sort)

    def close_session(self, s, why):
        """closeSession of `s`. The other sessions' events of that one
        transaction are printed sorted: ZooKeeper deletes a session's
        ephemerals in the iteration order of a Java hash set."""
        others = [o for o in self.sessions if o is not s and not o.broken]
        # /cl is outside the random path space: its ACL stays open.
        eph = "/cl/" + s.label
        self.do(s, zp.create(1, eph, b"bye", WORLD_ALL, 1),
                {"op": "create", "path": eph, "flags": 1})
        if others:
            self.do(others[0], zp.exists(eph, True), {"op": "exists", "path": eph, "watch": True})
            self.do(others[-1], zp.get_children("/cl", True),
                    {"op": "getChildren", "path": "/cl", "watch": True})
        self.checkpoint("before closing " + s.label)
        r = s.stop()
        self.sessions.remove(s)
        self.emit({"op": "close_session", "s": s.label, "why": why, "r": r})
        self.checkpoint("after closing " + s.label, sort=True)

    def poll_until(self, s, req, gone, limit):
        """Polls `req` on `s` (not printed) until `gone(outcome)`; bounded."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            res, _ = s.call(req)
            if gone(res):
                return True
            if "err" in res and res["err"] in ("Timeout", "SessionBroken", "SessionGone"):
                return False
            time.sleep(0.2)
        return False

    def scenario_expiry(self, dying, n):
        """Session `dying` (4 s timeout) owns ephemerals under a watched
        parent; its socket is cut without closeSession; another session
        waits until they are gone."""
        others = [s for s in self.sessions if s is not dying and not s.broken]
        if not others:
            self.emit({"scenario": "expiry", "n": n, "skipped": "no other session"})
            return
        obs, obs2 = others[0], others[min(1, len(others) - 1)]
        obs3 = others[min(2, len(others) - 1)]
        base = "/x%d" % n
        self.emit({"scenario": "expiry", "n": n, "dying": dying.label, "observer": obs.label})
        self.do(obs, zp.create(1, base, b"parent", WORLD_ALL, 0),
                {"op": "create", "s": obs.label, "path": base, "flags": 0})
        self.do(dying, zp.create(15, base + "/eph", b"e", WORLD_ALL, 1),
                {"op": "create2", "s": dying.label, "path": base + "/eph", "flags": 1})
        for _ in range(2):
            self.do(dying, zp.create(1, base + "/seq-", b"", WORLD_ALL, 3),
                    {"op": "create", "s": dying.label, "path": base + "/seq-", "flags": 3})
        self.do(dying, zp.create(15, base + "/persist", b"p", WORLD_ALL, 0),
                {"op": "create2", "s": dying.label, "path": base + "/persist", "flags": 0})
        self.do(dying, zp.get_ephemerals(base), {"op": "getEphemerals", "s": dying.label,
                                                 "prefix": base})
        self.do(obs, zp.exists(base + "/eph", True), {"op": "exists", "s": obs.label,
                                                      "path": base + "/eph", "watch": True})
        self.do(obs, zp.get_data(base + "/eph", True), {"op": "getData", "s": obs.label,
                                                        "path": base + "/eph", "watch": True})
        self.do(obs, zp.get_children(base, True), {"op": "getChildren", "s": obs.label,
                                                   "path": base, "watch": True})
        self.do(obs2, zp.add_watch(base, 1), {"op": "addWatch", "s": obs2.label, "path": base,
                                              "mode": 1})
        self.do(obs3, zp.add_watch(base, 0), {"op": "addWatch", "s": obs3.label, "path": base,
                                              "mode": 0})
        self.do(obs2, zp.exists(base + "/persist", True),
                {"op": "exists", "s": obs2.label, "path": base + "/persist", "watch": True})
        self.checkpoint("before killing " + dying.label)
        sid, passwd = dying.sid, dying.passwd
        stopped = dying.kill()
        self.sessions.remove(dying)
        self.emit({"op": "kill_connection", "s": dying.label, "client_stopped": stopped})
        t0 = time.monotonic()
        gone = self.poll_until(obs, zp.exists(base + "/eph", False),
                               lambda r: r.get("err") == "NoNode", EXPIRY_WAIT)
        elapsed = time.monotonic() - t0
        print("expiry %d: ephemerals gone after %.1f s" % (n, elapsed), file=sys.stderr)
        self.emit({"op": "await_expiry", "s": obs.label, "dying": dying.label, "gone": gone,
                   "within_timeout_plus_margin": gone and elapsed < 4.0 * 3 + 2})
        # The expiry is one transaction; its events in hash-set order (see close_session).
        self.checkpoint("after expiry of " + dying.label, sort=True)
        self.do(obs, zp.get_children2(base, False), {"op": "getChildren2", "s": obs.label,
                                                     "path": base})
        self.do(obs, zp.get_data(base + "/persist", False),
                {"op": "getData", "s": obs.label, "path": base + "/persist"})
        # The expired session cannot be resumed.
        self.emit({"probe": "resume expired session", "r": self.raw_handshake(
            NORMAL_TIMEOUT_MS, session_id=sid, passwd=passwd)})

    def scenario_container_ttl(self):
        """The background reaper: an empty container that had children and
        TTL nodes whose ttl passed are deleted; a never-used container and a
        TTL node with a child are not. Reaping order (and whether two nodes
        go in one sweep) is timing-dependent, so the events of the scenario
        are printed sorted, between two checkpoints."""
        a, b = self.sessions[0], self.sessions[1 % len(self.sessions)]
        c = self.sessions[2 % len(self.sessions)]
        self.emit({"scenario": "container+ttl", "s": a.label, "watchers": [b.label, c.label]})
        self.checkpoint("before reaper scenario")
        self.do(a, zp.create(19, "/k", b"c", WORLD_ALL, 4), {"op": "createContainer", "path": "/k"})
        self.do(a, zp.create(19, "/k2", b"never used", WORLD_ALL, 4),
                {"op": "createContainer", "path": "/k2"})
        self.do(a, zp.create(15, "/k/c", b"", WORLD_ALL, 0), {"op": "create2", "path": "/k/c"})
        self.do(a, zp.create(1, "/k/e", b"", WORLD_ALL, 1), {"op": "create", "path": "/k/e",
                                                             "flags": 1})
        self.do(a, zp.get_children2("/k", False), {"op": "getChildren2", "path": "/k"})
        self.do(b, zp.exists("/k", True), {"op": "exists", "s": b.label, "path": "/k",
                                           "watch": True})
        self.do(b, zp.get_children("/k", True), {"op": "getChildren", "s": b.label, "path": "/k",
                                                 "watch": True})
        self.do(a, zp.create(1, "/tt", b"", WORLD_ALL, 0), {"op": "create", "path": "/tt"})
        self.do(b, zp.add_watch("/tt", 0), {"op": "addWatch", "s": b.label, "path": "/tt",
                                            "mode": 0})
        self.do(c, zp.add_watch("/tt", 1), {"op": "addWatch", "s": c.label, "path": "/tt",
                                            "mode": 1})
        # ttl 1 ms: may be reaped at once, so nothing reads them before the wait.
        self.do(a, zp.create(21, "/tt/t", b"ttl", WORLD_ALL, 5, 1),
                {"op": "createTTL", "path": "/tt/t", "flags": 5, "ttl": 1})
        self.do(a, zp.create(21, "/tt/s-", b"ttl", WORLD_ALL, 6, 1),
                {"op": "createTTL", "path": "/tt/s-", "flags": 6, "ttl": 1})
        # Never empty, so never reaped: created with its child in one multi.
        self.do(a, zp.multi([zp.m_create(21, "/tt/t2", b"ttl", WORLD_ALL, 5, 1),
                             zp.m_create(1, "/tt/t2/c", b"", WORLD_ALL, 0)]),
                {"op": "multi", "ops": [{"t": "createTTL", "path": "/tt/t2", "ttl": 1},
                                        {"t": "create", "path": "/tt/t2/c"}]})
        # The TTL nodes are reaped BEFORE /k is emptied, so that the zxids of the two
        # reapings come in one order on every server (a reaper pass may take both at once).
        tt_gone = self.poll_until(
            a, zp.get_children("/tt", False),
            lambda r: "ok" in r and sorted(r["ok"]["children"] or []) == ["t2"],
            BACKGROUND_WAIT)
        self.do(a, zp.delete("/k/c", -1), {"op": "delete", "path": "/k/c"})
        self.do(a, zp.delete("/k/e", -1), {"op": "delete", "path": "/k/e"})
        k_gone = self.poll_until(a, zp.exists("/k", False), lambda r: r.get("err") == "NoNode",
                                 BACKGROUND_WAIT)
        self.emit({"op": "await_reaper", "container_gone": k_gone, "ttl_nodes_gone": tt_gone})
        self.checkpoint("after reaper scenario", sort=True)
        self.do(a, zp.exists("/k2", False), {"op": "exists", "path": "/k2"})
        self.do(a, zp.get_children2("/tt", False), {"op": "getChildren2", "path": "/tt"})
        self.do(a, zp.get_data("/tt/t2", False), {"op": "getData", "path": "/tt/t2"})
        self.do(a, zp.get_children2("/", False), {"op": "getChildren2", "path": "/"})

    def scenario_resume(self, s):
        """The connection of `s` is cut; a new client resumes the session
        with its id and password."""
        self.emit({"scenario": "resume", "s": s.label})
        self.sync_and_dump(s, "before resume")
        sid, passwd, auths, last = s.sid, s.passwd, s.auths, s.last_reply_zxid
        s.kill()
        idx = self.sessions.index(s)
        ns = Sess(self, s.label, s.timeout_ms, auths, client_id=(sid, passwd), last_zxid=last)
        r = ns.start()
        self.emit({"op": "resume_session", "s": s.label, "r": r, "same_session": ns.sid == sid})
        self.sessions[idx] = ns
        self.all_sessions.append(ns)
        self.do(ns, zp.get_ephemerals("/"), {"op": "getEphemerals", "s": ns.label, "prefix": "/"})
        self.do(ns, zp.who_am_i(), {"op": "whoAmI", "s": ns.label})

    # ---- probes

    def raw_handshake(self, timeout_ms, **kw):
        try:
            rz = zp.RawZk(self.host, self.port)
        except OSError as e:
            return {"err": "connect", "exc": type(e).__name__}
        try:
            hs = rz.handshake(timeout_ms, **kw)
            if hs["timeOut"] > 0:
                hs["close"] = rz.close_session()
            else:
                hs["closed_by_server"] = rz.closed_by_peer(3.0)
            return hs
        except zp.Closed:
            return {"closed_without_reply": True}
        except TimeoutError:
            return {"timeout": True}
        finally:
            rz.close()

    def raw_probe(self, name, fn):
        rz = None
        try:
            rz = zp.RawZk(self.host, self.port)
            r = fn(rz)
        except zp.Closed:
            r = {"closed": True}
        except TimeoutError:
            r = {"timeout": True}
        except Exception as e:
            r = {"exception": type(e).__name__, "msg": str(e)[:200]}
        finally:
            if rz is not None:
                rz.close()
        self.emit({"probe": name, "r": r})

    @staticmethod
    def reply(t):
        xid, zxid, err, body = t
        zx = zxid if zxid in (0, -1) else (">0" if zxid > 0 else "<0")
        return {"xid": xid, "zxid": zx, "err": zp.err_name(err), "body": ndata(body)}

    def follow_up(self, rz, xid=900):
        """An exists on the same connection: 'ok' if it still serves, else closed."""
        try:
            t = rz.request(xid, 3, zp.p_str("/") + zp.p_bool(False), timeout=3.0)
            return "served" if t[0] == xid else "reply xid %d" % t[0]
        except zp.Closed:
            return "closed"
        except TimeoutError:
            return "timeout"
        except OSError:
            return "closed"

    def raw_probes(self):
        h = NORMAL_TIMEOUT_MS
        for t in (1000, 4000, 10000, 40000, 1000000, 0):
            self.emit({"probe": "negotiate timeout", "asked": t, "r": self.raw_handshake(t)})
        self.emit({"probe": "connect without readOnly byte",
                   "r": self.raw_handshake(h, read_only_byte=False)})
        self.emit({"probe": "connect unknown session",
                   "r": self.raw_handshake(h, session_id=0x1234567, passwd=b"x" * 16)})
        self.emit({"probe": "connect lastZxidSeen from the future",
                   "r": self.raw_handshake(h, last_zxid=1 << 62)})

        def send(rz, xid, opcode, body):
            rz.handshake(h)
            return {"reply": self.reply(rz.request(xid, opcode, body)), "then": self.follow_up(rz)}

        def send_then_closed(rz, xid, opcode, body):
            # The server is expected to close the connection after this reply;
            # ZooKeeper may still answer a request sent meanwhile (a race), so
            # nothing more is sent.
            rz.handshake(h)
            return {"reply": self.reply(rz.request(xid, opcode, body)),
                    "closed_within_3s": rz.closed_by_peer(3.0)}

        self.raw_probe("unknown opcode 999", lambda rz: send_then_closed(rz, 1, 999, b""))
        self.raw_probe("multi with a read", lambda rz: send(
            rz, 1, 14, zp.multi([zp.m_get_data("/"), zp.m_create(1, "/mx", b"", WORLD_ALL, 0)]).body))
        self.raw_probe("multiRead with a write", lambda rz: send(
            rz, 1, 22, zp.multi([zp.m_get_data("/"), zp.m_create(1, "/mx", b"", WORLD_ALL, 0)], 22).body))
        self.raw_probe("multi of reads only", lambda rz: send(
            rz, 1, 14, zp.multi([zp.m_get_data("/")]).body))
        self.raw_probe("auth unknown scheme", lambda rz: send_then_closed(
            rz, -4, 100, zp.p_int(0) + zp.p_str("foo") + zp.p_buf(b"bar")))
        self.raw_probe("auth digest without colon", lambda rz: send(
            rz, -4, 100, zp.p_int(0) + zp.p_str("digest") + zp.p_buf(b"nocolon")))
        self.raw_probe("ping as request xid 7", lambda rz: send(rz, 7, 11, b""))
        self.raw_probe("sasl token, SASL not configured", lambda rz: send(
            rz, 1, 102, zp.p_buf(b"token")))
        self.raw_probe("deleteContainer from a client", lambda rz: send(
            rz, 1, 20, zp.p_str("/zookeeper/quota")))

        def big(rz):
            rz.handshake(h)
            rz.sock.sendall(zp.p_int(2_000_000) + b"\x00" * 64)
            return {"closed": rz.closed_by_peer(3.0)}
        self.raw_probe("frame longer than jute.maxbuffer", big)

        def neg(rz):
            rz.handshake(h)
            rz.sock.sendall(zp.p_int(-5))
            return {"closed": rz.closed_by_peer(3.0)}
        self.raw_probe("negative frame length", neg)

        def before(rz):
            rz.send_frame(zp.p_int(1) + zp.p_int(4) + zp.p_str("/") + zp.p_bool(False))
            return {"closed": rz.closed_by_peer(3.0)}
        self.raw_probe("request before handshake", before)

        def close_reply(rz):
            rz.handshake(h)
            r = self.reply(rz.request(1, -11, b""))
            return {"reply": r, "closed": rz.closed_by_peer(3.0)}
        self.raw_probe("closeSession", close_reply)

        def set_watches(rz):
            rz.handshake(h)
            r = self.reply(rz.request(-8, 101, zp.set_watches(
                0, ["/", "/nope"], ["/nope", "/zookeeper"], ["/", "/zookeeper"]).body))
            ev = [[zp.EVENT_NAMES.get(t, t), zp.STATE_NAMES.get(s, s), p] for t, s, p in rz.events]
            rz.close_session()
            return {"reply": r, "events_before_reply": ev}
        self.raw_probe("setWatches xid -8 relativeZxid 0", set_watches)

        def bad_password(rz):
            rz.handshake(h)
            sid, pw = rz.session_id, rz.passwd
            r2 = zp.RawZk(self.host, self.port)
            try:
                hs2 = r2.handshake(h, session_id=sid, passwd=bytes(b ^ 0x55 for b in pw))
                hs2["closed_by_server"] = r2.closed_by_peer(3.0)
            finally:
                r2.close()
            first_closed = rz.closed_by_peer(1.0)
            r3 = zp.RawZk(self.host, self.port)
            try:
                hs3 = r3.handshake(h, session_id=sid, passwd=pw)
                hs3["same_session"] = r3.session_id == sid
                hs3["then"] = self.follow_up(r3)
                r3.close_session()
            finally:
                r3.close()
            return {"wrong_password": hs2, "first_connection_closed": first_closed,
                    "right_password": hs3}
        self.raw_probe("reconnect with a wrong password, then the right one", bad_password)

        def standalone_check(rz):
            rz.handshake(h)
            replies = [self.reply(rz.request(1, 1, zp.create_body("/chk", b"", WORLD_ALL, 0)))]
            # A SUCCESSFUL standalone check is not compared: ZooKeeper 3.8.0 never answers it
            # (the 3.8 client API cannot send one; a client that did would hang), and the
            # gateway answers it as 3.9 does. Failing checks are answered alike.
            rz.send_frame(zp.p_int(3) + zp.p_int(13) + zp.p_str("/chk") + zp.p_int(5))
            rz.send_frame(zp.p_int(4) + zp.p_int(13) + zp.p_str("/nope") + zp.p_int(-1))
            rz.send_frame(zp.p_int(5) + zp.p_int(9) + zp.p_str("/"))
            while True:
                try:
                    t = rz.read_reply(3.0)
                except (TimeoutError, zp.Closed) as e:
                    replies.append({"end": type(e).__name__})
                    break
                replies.append(self.reply(t))
                if t[0] == 5:
                    break
            replies.append({"delete": self.reply(rz.request(6, 2, zp.p_str("/chk") + zp.p_int(-1)))})
            rz.close_session()
            return replies
        self.raw_probe("standalone check (opcode 13) then sync", standalone_check)
        four = {}
        for w in ("ruok", "isro"):
            try:
                four[w] = zp.four_letter(self.host, self.port, w).decode("latin-1")
            except OSError as e:
                four[w] = "error:" + type(e).__name__
        self.emit({"probe": "four letter words", "r": four})

    def static_probes(self, s):
        """Built-in nodes, create modes x opcodes, path validation, reserved
        paths; all on session `s`."""
        for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            self.do(s, zp.get_data(p, False), {"op": "getData", "path": p})
            self.do(s, zp.get_acl(p), {"op": "getACL", "path": p})
            self.do(s, zp.get_children2(p, False), {"op": "getChildren2", "path": p})
            self.do(s, zp.get_all_children_number(p), {"op": "getAllChildrenNumber", "path": p})
        self.do(s, zp.create(1, "/m", b"modes", WORLD_ALL, 0), {"op": "create", "path": "/m"})
        self.do(s, zp.create(1, "/cl", b"", WORLD_ALL, 0), {"op": "create", "path": "/cl"})
        for opcode in (1, 15, 19, 21):
            for flags in (0, 1, 2, 3, 4, 5, 6, 7, -1):
                ttls = [None]
                if opcode == 21:
                    # Never a negative ttl with a non-TTL mode: it crashes ZooKeeper 3.8.0.
                    ttls = [1000000, 0, -1, MAX_TTL, MAX_TTL + 1] if flags in (5, 6) else [1000000, 0]
                for ttl in ttls:
                    path = "/m/o%d-f%d-%s" % (opcode, flags, "none" if ttl is None else ttl)
                    req = zp.create(opcode, path, b"d", WORLD_ALL, flags,
                                    ttl if ttl is not None else None)
                    line = {"op": zp.OP_NAMES[opcode], "path": path, "flags": flags}
                    if ttl is not None:
                        line["ttl"] = ttl
                    self.do(s, req, line)
        self.do(s, zp.get_children2("/m", False), {"op": "getChildren2", "path": "/m"})
        self.do(s, zp.get_ephemerals("/m"), {"op": "getEphemerals", "prefix": "/m"})
        for p in ("", "a", "/m/", "//", "/m/.", "/m/./x", "/m/../x", "/nope/./x", "/m/x\x00y",
                  "/m/a b", "/m/\u00e9", "/zookeeper", "/zookeeper/foo", "/zookeeper/config/x",
                  "/zookeeper/quota/x"):
            self.do(s, zp.create(1, p, b"", WORLD_ALL, 0), {"op": "create", "path": p})
        for p in ("/m/", "//", "/", "/zookeeper/quota/"):
            self.do(s, zp.create(1, p, b"", WORLD_ALL, 2), {"op": "create", "path": p, "flags": 2})
        for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/zookeeper/foo",
                  "/zookeeper/quota/x", "", "a", "/m/"):
            self.do(s, zp.delete(p, -1), {"op": "delete", "path": p})
        for p in ("/", "/zookeeper", "/zookeeper/config", "/zookeeper/quota", "", "/m/"):
            self.do(s, zp.set_data(p, b"w", -1), {"op": "setData", "path": p, "data": "w"})
        for p in ("/", "/zookeeper", "/nope", "", "a", "/m/"):
            self.do(s, zp.exists(p, False), {"op": "exists", "path": p})
            self.do(s, zp.get_children(p, False), {"op": "getChildren", "path": p})
            self.do(s, zp.sync(p), {"op": "sync", "path": p})
        for name, acl in (("open", WORLD_ALL), ("creator", [(31, "auth", "")]),
                          ("dup", ACLS["dup"]), ("empty", []), ("null", None),
                          ("badscheme", ACLS["badscheme"]), ("digest without colon",
                                                            [(31, "digest", "nocolon")]),
                          ("world someone", [(31, "world", "someone")]),
                          ("perms 0", [(0, "world", "anyone")]), ("perms 95", [(95, "world", "anyone")]),
                          ("ip", ACLS["ip"]), ("ip bad", [(31, "ip", "not-an-ip")]),
                          ("ipnet", [(31, "ip", "10.0.0.0/8")]),
                          ("super", [(31, "super", "")]),
                          ("auth with id", [(31, "auth", "user1:pw1")])):
            path = "/m/acl-" + name.replace(" ", "-")
            self.do(s, zp.create(1, path, b"", acl, 0), {"op": "create", "path": path, "acl": name})
            self.do(s, zp.get_acl(path), {"op": "getACL", "path": path})
            self.do(s, zp.get_data(path, False), {"op": "getData", "path": path})
            self.do(s, zp.set_data(path, b"z", -1), {"op": "setData", "path": path})
            self.do(s, zp.set_acl(path, WORLD_ALL, -1), {"op": "setACL", "path": path, "acl": "open"})
        self.do(s, zp.add_watch("/m", 2), {"op": "addWatch", "path": "/m", "mode": 2})
        for t in (0, 4, 5, 6):
            self.do(s, zp.check_watches("/m", t), {"op": "checkWatches", "path": "/m", "type": t})
            self.do(s, zp.remove_watches("/m", t), {"op": "removeWatches", "path": "/m", "type": t})
        self.do(s, zp.multi([]), {"op": "multi", "ops": []})
        self.do(s, zp.multi([], 22), {"op": "multiRead", "ops": []})
        self.do(s, zp.get_all_children_number("/"), {"op": "getAllChildrenNumber", "path": "/"})

    def dump_tree(self, s):
        """Every node reachable from / (data, Stat, ACL), in path order."""
        todo, seen = ["/"], 0
        while todo and seen < 2000:
            path = todo.pop(0)
            seen += 1
            res, _ = s.call(zp.get_children(path, False))
            kids = sorted(res["ok"]["children"] or []) if "ok" in res else []
            d, _ = s.call(zp.get_data(path, False))
            a, _ = s.call(zp.get_acl(path))
            self.norm.begin_site()
            line = {"tree": path}
            line["data"] = self.norm.result(d["ok"]) if "ok" in d else d
            line["acl"] = self.norm.result(a["ok"])["acl"] if "ok" in a else a
            self.emit(line)
            todo = [(path.rstrip("/") + "/" + k) for k in kids] + todo
        self.emit({"tree_nodes": seen})

    # ---- main

    def wait_serving(self, limit=30.0):
        """True once the server completes a session handshake. (ZooKeeper
        answers `ruok` with `imok` before it serves sessions: for a moment
        after that it closes every handshake, "ZooKeeperServer not running".)"""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                rz = zp.RawZk(self.host, self.port, timeout=2.0)
                try:
                    if rz.handshake(NORMAL_TIMEOUT_MS)["timeOut"] > 0:
                        rz.close_session()
                        return True
                finally:
                    rz.close()
            except (OSError, zp.Closed, TimeoutError, struct.error):
                pass
            time.sleep(0.1)
        return False

    def run(self):
        self.emit({"driver": "zk-differential", "version": 1, "seed": self.seed, "ops": self.nops})
        self.emit({"serving": self.wait_serving()})
        self.raw_probes()
        initial = [["user1"], ["user2"], [], ["user1", "user2"]]
        for auths in initial:
            self.new_session(auths)
        x1 = self.new_session([], EXPIRING_TIMEOUT_MS)
        x2 = self.new_session(["user1"], EXPIRING_TIMEOUT_MS)
        self.static_probes(self.sessions[0])
        self.checkpoint("after probes")

        n = self.nops
        schedule = {
            int(n * 0.20): ("close", 2),
            int(n * 0.30): ("expire", x1),
            int(n * 0.45): ("container", None),
            int(n * 0.55): ("resume", 3),
            int(n * 0.70): ("expire", x2),
            int(n * 0.85): ("close", 1),
        }
        expiries = 0
        op_names = [o for o, _ in self.OPS]
        op_weights = [w for _, w in self.OPS]
        self.in_workload = True
        for i in range(n):
            self.op_index = i
            if self.over_budget():
                self.emit({"i": i, "skipped_rest": "run budget of %d s exceeded" % RUN_BUDGET})
                break
            if i in schedule:
                kind, arg = schedule[i]
                try:
                    if kind == "close":
                        label = "s%d" % (arg + 1)
                        victim = next((s for s in self.sessions if s.label == label), None)
                        if victim:
                            self.close_session(victim, "scheduled")
                        self.new_session(["user2"] if arg == 2 else [])
                        if arg == 1:
                            self.new_session(["user1"])
                    elif kind == "expire":
                        expiries += 1
                        if arg in self.sessions:
                            self.scenario_expiry(arg, expiries)
                    elif kind == "container":
                        self.scenario_container_ttl()
                    elif kind == "resume":
                        label = "s%d" % (arg + 1)
                        victim = next((s for s in self.sessions if s.label == label), None)
                        if victim:
                            self.scenario_resume(victim)
                except Exception as e:
                    self.emit({"i": i, "scenario_crash": kind, "exc": type(e).__name__,
                               "msg": str(e)[:300]})
            s = self.sessions[i % len(self.sessions)]
            op = self.rng.choices(op_names, op_weights)[0]
            try:
                getattr(self, op)(s)
            except Exception as e:
                self.emit({"i": i, "s": s.label, "op": op, "driver_exception": type(e).__name__,
                           "msg": str(e)[:300]})
            if (i + 1) % CHECKPOINT_EVERY == 0:
                self.checkpoint("op %d" % (i + 1))

        self.op_index = n
        self.in_workload = False
        self.final()

    def final(self):
        for s in self.sessions:
            self.do(s, zp.get_ephemerals("/"), {"op": "getEphemerals", "s": s.label, "prefix": "/"})
            self.do(s, zp.who_am_i(), {"op": "whoAmI", "s": s.label})
        self.dump_tree(self.sessions[0])
        self.checkpoint("end")
        for s in list(self.sessions):
            r = s.stop()
            self.emit({"op": "close_session", "s": s.label, "why": "end", "r": r})
        self.sessions = []
        order = self.norm.zxid_order()
        for k in range(0, len(order), 50):
            self.emit({"zxid_order": order[k:k + 50]})
        self.emit({"time_checks": self.norm.time_checks()})
        self.emit({"summary": dict(sorted(self.summary.items()))})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hostport", help="HOST:PORT of the ZooKeeper-compatible server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--out", help="transcript file (default stdout)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    fh = open(args.out, "w") if args.out else sys.stdout
    t0 = time.monotonic()
    drv = Driver(args.hostport, args.seed, args.ops, Out(fh))
    try:
        drv.run()
    except Exception as e:
        drv.emit({"driver_crash": type(e).__name__, "msg": str(e)[:500]})
        raise
    finally:
        fh.flush()
        for s in drv.all_sessions:
            if s.alive:
                try:
                    s.stop()
                except Exception:
                    pass
        print("zk differential: seed %d, %d ops, %d lines, %.1f s"
              % (args.seed, args.ops, drv.out.lines, time.monotonic() - t0), file=sys.stderr)
    if fh is not sys.stdout:
        fh.close()
    # kazoo's threads of killed sessions are daemons; do not wait for them.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
