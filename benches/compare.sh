#!/usr/bin/env bash
# The side-by-side comparison: upstream etcd 3.4, ZooKeeper 3.8 and Synod on this machine, every
# scenario against each in one run (alternating, fresh servers, 3 rounds), with etcd's own
# `benchmark` tool as the referee of the etcd scenarios and synod-bench for the rest:
#
#   benches/compare.sh                       # everything (about half an hour on 2 cores)
#   benches/compare.sh put watch zk          # some scenarios (see --help)
#   benches/compare.sh --rounds 5 --scale 0.5
#   benches/compare.sh --smoke               # every scenario with tiny totals (CI: scripts/test)
#
# Results go to benches/results/latest/ (--out-dir): runs.jsonl (every run), results.md (medians,
# ratios Synod / upstream, targets), chart.svg. `synod-bench report <runs.jsonl>` rewrites the
# last two. A smoke run writes them into its temp dir and prints results.md.
#
# Builds `synod` and `synod-bench` in release mode first (cargo build --release), unless
# SYNOD_BIN / SYNOD_BENCH_BIN name binaries to use. Needs etcd 3.4, etcd's benchmark tool and
# ZooKeeper 3.8: scripts/setup-test-deps installs and builds them.
#
# Environment:
#   SYNOD_BIN        the synod under test (default: <target>/release/synod, built here)
#   SYNOD_BENCH_BIN  synod-bench (default: <target>/release/synod-bench, built here)
#   CARGO_TARGET_DIR respected (default ./target)
#   BENCHMARK_BIN    default ${SYNOD_CACHE:-~/.cache/synod}/benchmark
#   ETCD_BIN         default /usr/bin/etcd
#   JAVA, ZK_CLASSPATH  ZooKeeper's JVM and jars (default: java on PATH, Debian's jars)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

die() { echo "compare.sh: ERROR: $*" >&2; exit 2; }

target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
CACHE="${SYNOD_CACHE:-$HOME/.cache/synod}"
export BENCHMARK_BIN="${BENCHMARK_BIN:-$CACHE/benchmark}"
export ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"

SETUP="run scripts/setup-test-deps (it installs etcd 3.4 and ZooKeeper 3.8 and builds etcd's benchmark tool)"
[ -x "$ETCD_BIN" ] || die "etcd 3.4 not found at $ETCD_BIN: $SETUP"
[ -x "$BENCHMARK_BIN" ] || die "etcd's benchmark tool not found at $BENCHMARK_BIN: $SETUP"
command -v "${JAVA:-java}" >/dev/null || die "java not found (ZooKeeper 3.8 runs on it): $SETUP"
if [ -z "${ZK_CLASSPATH:-}" ]; then
    [ -f /usr/share/java/zookeeper.jar ] || die "ZooKeeper 3.8 not found (/usr/share/java/zookeeper.jar): $SETUP"
fi

if [ -z "${SYNOD_BIN:-}" ]; then
    echo "compare.sh: cargo build --release -p synod" >&2
    cargo build --release -p synod
    SYNOD_BIN="$target_dir/release/synod"
fi
if [ -z "${SYNOD_BENCH_BIN:-}" ]; then
    echo "compare.sh: cargo build --release -p synod-bench" >&2
    cargo build --release -p synod-bench
    SYNOD_BENCH_BIN="$target_dir/release/synod-bench"
fi
[ -x "$SYNOD_BIN" ] || die "synod not found at $SYNOD_BIN"
[ -x "$SYNOD_BENCH_BIN" ] || die "synod-bench not found at $SYNOD_BENCH_BIN"
export SYNOD_BIN

exec "$SYNOD_BENCH_BIN" compare "$@"
