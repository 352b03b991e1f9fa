#!/usr/bin/env bash
# Put throughput/latency: upstream etcd 3.4 vs synod, measured with etcd's own
# benchmark tool (built by scripts/setup-test-deps):
#
#   benchmark --endpoints=<ep> --precise --clients=50 --conns=10 put --key-size=8 --val-size=256 --total=N
#
# (--precise only prints latencies with more digits; the tool's default
# --key-space-size=1 means every put overwrites the same key.)
#
# Each run starts a fresh single-member server on 127.0.0.1 with a new temp
# data dir and the same etcd flags for both (synod also gets
# --zk-listen-addr '' as in the test harness); runs alternate etcd, synod,
# etcd, synod, ... Writes a markdown table to benches/results/put.md and
# prints it. Every server is stopped on exit.
#
# Environment:
#   BENCH_TOTAL    puts per run (default 20000)
#   BENCH_ROUNDS   runs per server (default 2)
#   BENCHMARK_BIN  default ${SYNOD_CACHE:-~/.cache/synod}/benchmark
#   SYNOD_BIN      default <target>/release/synod   ETCD_BIN  default /usr/bin/etcd
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

TOTAL="${BENCH_TOTAL:-20000}"
ROUNDS="${BENCH_ROUNDS:-2}"
CACHE="${SYNOD_CACHE:-$HOME/.cache/synod}"
BENCHMARK_BIN="${BENCHMARK_BIN:-$CACHE/benchmark}"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
SYNOD_BIN="${SYNOD_BIN:-$target_dir/release/synod}"
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
ETCDCTL_BIN="${ETCDCTL_BIN:-/usr/bin/etcdctl}"
OUT="$ROOT/benches/results/put.md"
PUT_ARGS=(--precise --clients=50 --conns=10 put --key-size=8 --val-size=256 "--total=$TOTAL")

die() { echo "etcd-benchmark: ERROR: $*" >&2; exit 1; }
[ -x "$BENCHMARK_BIN" ] || die "benchmark tool not found at $BENCHMARK_BIN (run scripts/setup-test-deps)"
[ -x "$ETCD_BIN" ] || die "etcd not found at $ETCD_BIN (apt-get install etcd-server)"
[ -x "$ETCDCTL_BIN" ] || die "etcdctl not found at $ETCDCTL_BIN (apt-get install etcd-client)"
[ -x "$SYNOD_BIN" ] || die "synod not found at $SYNOD_BIN (cargo build --release -p synod)"
[[ "$TOTAL" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 ]] || die "BENCH_TOTAL/BENCH_ROUNDS must be positive integers"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/synod-bench.XXXXXX")"
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port in 15000..32000 (below the ephemeral range, away from etcd e2e's 20000+)
# that nothing listens on.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((15000 + RANDOM % 17000))
        if [ "$p" -ge 19990 ] && [ "$p" -lt 20210 ]; then continue; fi
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    die "no free port found"
}

# start_server <flavor> <run-id>: starts it in the background, waits until healthy.
start_server() {
    local flavor="$1" id="$2" bin cport pport dir
    cport="$(free_port)"; pport="$(free_port)"
    while [ "$pport" = "$cport" ]; do pport="$(free_port)"; done
    dir="$WORK/$id"; mkdir -p "$dir"
    local args=(--name m0 --data-dir "$dir/data"
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport"
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport"
        --initial-cluster "m0=http://127.0.0.1:$pport" --initial-cluster-state new
        --initial-cluster-token synod-bench)
    case "$flavor" in
        etcd) bin="$ETCD_BIN"; args+=(--logger=zap --log-outputs=stderr) ;;
        synod) bin="$SYNOD_BIN"; args+=(--zk-listen-addr '') ;;
    esac
    "$bin" "${args[@]}" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    ENDPOINT="127.0.0.1:$cport"
    LOG="$dir/server.log"
    for _ in $(seq 1 150); do   # at most ~30 s
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -40 "$LOG" >&2; die "$flavor exited during startup"
        fi
        if ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$ENDPOINT" --dial-timeout=1s --command-timeout=2s \
            endpoint health >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    tail -40 "$LOG" >&2; die "$flavor not healthy after 30 s"
}

# bench <flavor> <round>: sets RPS, P50, P99 (ms). Runs in the main shell
# (no subshell) so the EXIT trap always sees the running server.
bench() {
    local flavor="$1" round="$2" out
    # Flush every dirty page the previous run left behind (etcd's bbolt leaves many to the
    # kernel's write-back): otherwise that write-back competes with the next run's fsyncs and
    # penalises whichever server happens to run second.
    sync
    start_server "$flavor" "$flavor-$round"
    out="$WORK/$flavor-$round/benchmark.out"
    echo "--- $flavor round $round: benchmark --endpoints=$ENDPOINT ${PUT_ARGS[*]}" >&2
    if ! timeout 600 "$BENCHMARK_BIN" --endpoints="$ENDPOINT" "${PUT_ARGS[@]}" >"$out" 2>&1; then
        tail -30 "$out" >&2; tail -30 "$LOG" >&2; die "benchmark against $flavor failed"
    fi
    stop_server
    RPS="$(awk '/Requests\/sec:/ {print $2; exit}' "$out")"
    P50="$(awk '$1=="50%" && $2=="in" {printf "%.2f", $3*1000; exit}' "$out")"
    P99="$(awk '$1=="99%" && $2=="in" {printf "%.2f", $3*1000; exit}' "$out")"
    [ -n "$RPS" ] && [ -n "$P50" ] && [ -n "$P99" ] || { cat "$out" >&2; die "could not parse benchmark output"; }
    grep -q "Total:" "$out" || die "no summary in benchmark output"
}

declare -A SUM_RPS SUM_P50 SUM_P99
rows=""
for round in $(seq 1 "$ROUNDS"); do
    for flavor in etcd synod; do
        bench "$flavor" "$round"
        rps="$RPS" p50="$P50" p99="$P99"
        echo "    $flavor round $round: $rps req/s, p50 $p50 ms, p99 $p99 ms" >&2
        rows+="| $flavor | $round | $(printf '%.0f' "$rps") | $p50 | $p99 |"$'\n'
        SUM_RPS[$flavor]="$(awk -v a="${SUM_RPS[$flavor]:-0}" -v b="$rps" 'BEGIN{print a+b}')"
        SUM_P50[$flavor]="$(awk -v a="${SUM_P50[$flavor]:-0}" -v b="$p50" 'BEGIN{print a+b}')"
        SUM_P99[$flavor]="$(awk -v a="${SUM_P99[$flavor]:-0}" -v b="$p99" 'BEGIN{print a+b}')"
    done
done

mean() { awk -v s="$1" -v n="$ROUNDS" -v f="$2" 'BEGIN{printf f, s/n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
e_rps="$(mean "${SUM_RPS[etcd]}" %.0f)"; s_rps="$(mean "${SUM_RPS[synod]}" %.0f)"
e_p50="$(mean "${SUM_P50[etcd]}" %.2f)"; s_p50="$(mean "${SUM_P50[synod]}" %.2f)"
e_p99="$(mean "${SUM_P99[etcd]}" %.2f)"; s_p99="$(mean "${SUM_P99[synod]}" %.2f)"

mkdir -p "$(dirname "$OUT")"
{
    echo "# Put benchmark: synod vs etcd"
    echo
    echo "\`benchmark ${PUT_ARGS[*]}\` (etcd 3.4 tools/benchmark), single member on 127.0.0.1,"
    echo "fresh data dir per run, runs alternating etcd/synod, $ROUNDS round(s)."
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "- etcd: $("$ETCD_BIN" --version | head -1)"
    echo "- synod: $SYNOD_BIN ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo
    echo "| server | round | throughput (req/s) | p50 (ms) | p99 (ms) |"
    echo "|---|---|---|---|---|"
    printf '%s' "$rows"
    echo
    echo "| mean over rounds | etcd | synod | synod/etcd |"
    echo "|---|---|---|---|"
    echo "| throughput (req/s) | $e_rps | $s_rps | $(ratio "$s_rps" "$e_rps") |"
    echo "| p50 latency (ms) | $e_p50 | $s_p50 | $(ratio "$s_p50" "$e_p50") |"
    echo "| p99 latency (ms) | $e_p99 | $s_p99 | $(ratio "$s_p99" "$e_p99") |"
} >"$OUT"
cat "$OUT"
