#!/usr/bin/env python3
"""Validates differential.py: for each seed, runs it against two fresh
ZooKeeper 3.8 servers (started here, one after the other) and checks that
the two transcripts are byte-identical.

    differential_selfcheck.py [--seeds 1,2,3] [--ops 1000] [--keep DIR]
                              [--against HOST:PORT]

`--against` compares a fresh ZooKeeper with an already running server
instead (e.g. `synod --zk-listen-addr ...`).

ZooKeeper is started as the reference doc describes (Debian's jars,
tickTime=2000, 4lw.commands.whitelist=*, admin server off) with
-Dzookeeper.extendedTypesEnabled=true -Dznode.container.checkIntervalMs=1000.
Every server started here is stopped (by its pid) before the script exits.
"""

import argparse
import difflib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "differential.py")
CLASSPATH = ":".join([
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/slf4j-api.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
])
LOG4J = """log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] %m%n
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class ZooKeeper:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="zkdiff-zk-")
        self.port = free_port()
        os.makedirs(os.path.join(self.dir, "data"))
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as f:
            f.write("tickTime=2000\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "4lw.commands.whitelist=*\nadmin.enableServer=false\n" % (self.dir, self.port))
        with open(os.path.join(self.dir, "log4j.properties"), "w") as f:
            f.write(LOG4J)
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            ["java", "-Dzookeeper.extendedTypesEnabled=true",
             "-Dznode.container.checkIntervalMs=1000",
             "-Dlog4j.configuration=file:%s/log4j.properties" % self.dir,
             "-cp", self.dir + ":" + CLASSPATH,
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.dir + "/zoo.cfg"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("zookeeper exited: see %s/server.log" % self.dir)
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                s.sendall(b"ruok")
                ok = s.recv(16) == b"imok"
                s.close()
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("zookeeper not ready after 30 s")

    def stop(self, keep=None):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if keep:
            shutil.copy(os.path.join(self.dir, "server.log"), keep)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_driver(hostport, seed, ops, out):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, DRIVER, hostport, "--seed", str(seed), "--ops", str(ops),
                        "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=600)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace"), file=sys.stderr)
    return dt, p.stderr.decode(errors="replace").strip().splitlines()[-1:]


def main():
    # SIGTERM unwinds like an exception, so every server and driver started
    # here is stopped by the `finally` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--keep", help="directory to keep transcripts and logs in")
    ap.add_argument("--against", help="HOST:PORT of a running candidate instead of a 2nd ZooKeeper")
    args = ap.parse_args()
    keep = args.keep or tempfile.mkdtemp(prefix="zkdiff-out-")
    os.makedirs(keep, exist_ok=True)
    failed = False
    for seed in [int(x) for x in args.seeds.split(",")]:
        outs = []
        for k in range(1 if args.against else 2):
            zk = ZooKeeper()
            out = os.path.join(keep, "seed%d-zk%d.jsonl" % (seed, k))
            try:
                dt, tail = run_driver("127.0.0.1:%d" % zk.port, seed, args.ops, out)
            finally:
                zk.stop(keep=os.path.join(keep, "seed%d-zk%d.log" % (seed, k)))
            print("seed %d run %d against fresh ZooKeeper: %.1f s %s" % (seed, k, dt, tail))
            outs.append(out)
        if args.against:
            out = os.path.join(keep, "seed%d-candidate.jsonl" % seed)
            dt, tail = run_driver(args.against, seed, args.ops, out)
            print("seed %d against %s: %.1f s %s" % (seed, args.against, dt, tail))
            outs.append(out)
        a = open(outs[0]).read().splitlines()
        b = open(outs[1]).read().splitlines()
        if a == b:
            print("seed %d: identical (%d lines)" % (seed, len(a)))
        else:
            failed = True
            print("seed %d: DIFFERENT" % seed)
            for n, line in enumerate(difflib.unified_diff(a, b, "zk0", "zk1", n=2, lineterm="")):
                print(line[:400])
                if n > 60:
                    break
    print("transcripts in", keep)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
