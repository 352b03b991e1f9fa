#!/usr/bin/env bash
# Upstream etcd 3.4 vs synod, measured with etcd's own benchmark tool (built by
# scripts/setup-test-deps), one or more scenarios per invocation:
#
#   benches/etcd-benchmark.sh [scenario ...]   scenarios: put watch watch-latency lease-keepalive,
#                                              all (= every one); default: put
#
# Each scenario runs `benchmark --endpoints=<ep> <args>` with the args below (--precise only
# prints latencies with more digits) and writes benches/results/<scenario>.md:
#
#   put              --precise --clients=50 --conns=10 put --key-size=8 --val-size=256 --total=N
#                    (the tool's default --key-space-size=1 means every put overwrites the same key)
#                    -> throughput (req/s), p50/p99 put latency.
#   watch            --precise --clients=10 --conns=10 watch --streams=10 --watch-per-stream=100
#                        --put-total=N --put-rate=100000
#                    1000 watchers (10 streams of 100, one stream per connection), all on one key
#                    (default --key-space-size=1), then N puts from 10 clients, in effect unthrottled
#                    (--put-rate must be given: the tool's default 0 panics after the first put):
#                    N x 1000 events.
#                    -> watch creation (watches/s; p50/p99 of a Watch call, which returns on the
#                    server's "created" response, a stream creating its watches one at a time) and
#                    events/s (events received by all watchers / time from the first put to the
#                    last event). The tool's per-event "latency" only times a client-side hand-off
#                    to its report, so it is not reported.
#   watch-latency    --precise --clients=100 --conns=10 watch-latency --total=N --put-rate=R
#                    100 watchers (10 per connection) on one key; one put at a time, at most R per
#                    second (the first R unpaced), each waiting for the event at all 100 watchers
#                    -> p50/p99 from the put's response reaching the client to the event reaching a
#                    watcher (0 if the event came first), and events/s, which --put-rate paces: it
#                    only shows whether the server kept up.
#   lease-keepalive  --precise --clients=50 --conns=10 lease-keepalive --total=N
#                    50 clients each grant a lease, then make N KeepAliveOnce calls in all (each
#                    opens a LeaseKeepAlive stream, sends one request, reads one response)
#                    -> throughput (req/s), p50/p99.
#
# Each run starts a fresh single-member server on 127.0.0.1 with a new temp
# data dir and the same etcd flags for both (synod also gets
# --zk-listen-addr '' as in the test harness); runs alternate etcd, synod,
# etcd, synod, ... Each scenario's markdown table is written once all its
# rounds are done, and printed. Every server is stopped on exit. A failing or
# hanging run (or output the parser does not recognise) stops the script with
# the tails of the benchmark output and the server log, and keeps the temp dir.
#
# Environment:
#   BENCH_ROUNDS              runs per server, every scenario (default 2)
#   BENCH_TOTAL               put: puts per run (default 20000)
#   BENCH_WATCH_PUTS          watch: puts per run (default 2000, i.e. 2,000,000 events)
#   BENCH_WATCH_LATENCY_PUTS  watch-latency: puts per run (default 2000)
#   BENCH_WATCH_LATENCY_RATE  watch-latency: puts per second at most (default 200)
#   BENCH_KEEPALIVE_TOTAL     lease-keepalive: keepalive requests per run (default 50000)
#   BENCH_TIMEOUT             seconds one benchmark run may take (default 600 for put, 120 otherwise)
#   BENCHMARK_BIN  default ${SYNOD_CACHE:-~/.cache/synod}/benchmark
#   SYNOD_BIN      default <target>/release/synod   ETCD_BIN  default /usr/bin/etcd
set -euo pipefail
export LC_NUMERIC=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

ALL_SCENARIOS=(put watch watch-latency lease-keepalive)
TOTAL="${BENCH_TOTAL:-20000}"
ROUNDS="${BENCH_ROUNDS:-2}"
WATCH_PUTS="${BENCH_WATCH_PUTS:-2000}"
WLAT_PUTS="${BENCH_WATCH_LATENCY_PUTS:-2000}"
WLAT_RATE="${BENCH_WATCH_LATENCY_RATE:-200}"
KEEPALIVE_TOTAL="${BENCH_KEEPALIVE_TOTAL:-50000}"
CACHE="${SYNOD_CACHE:-$HOME/.cache/synod}"
BENCHMARK_BIN="${BENCHMARK_BIN:-$CACHE/benchmark}"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
SYNOD_BIN="${SYNOD_BIN:-$target_dir/release/synod}"
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
ETCDCTL_BIN="${ETCDCTL_BIN:-/usr/bin/etcdctl}"

die() { echo "etcd-benchmark: ERROR: $*" >&2; exit 1; }
usage() { echo "usage: $0 [put|watch|watch-latency|lease-keepalive|all ...]   (default: put)"; }

# Scenarios from the arguments, in the order given, each once.
SCENARIOS=()
add_scenario() {
    local s
    for s in "${SCENARIOS[@]}"; do [ "$s" = "$1" ] && return 0; done
    SCENARIOS+=("$1")
}
[ "$#" -gt 0 ] || set -- put
for arg in "$@"; do
    case "$arg" in
        put|watch|watch-latency|lease-keepalive) add_scenario "$arg" ;;
        all) for s in "${ALL_SCENARIOS[@]}"; do add_scenario "$s"; done ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown scenario '$arg'" ;;
    esac
done

[ -x "$BENCHMARK_BIN" ] || die "benchmark tool not found at $BENCHMARK_BIN (run scripts/setup-test-deps)"
[ -x "$ETCD_BIN" ] || die "etcd not found at $ETCD_BIN (apt-get install etcd-server)"
[ -x "$ETCDCTL_BIN" ] || die "etcdctl not found at $ETCDCTL_BIN (apt-get install etcd-client)"
[ -x "$SYNOD_BIN" ] || die "synod not found at $SYNOD_BIN (cargo build --release -p synod)"
posint() { [[ "$2" =~ ^[0-9]+$ && "$2" -ge 1 ]] || die "$1 must be a positive integer (got '$2')"; }
posint BENCH_TOTAL "$TOTAL"; posint BENCH_ROUNDS "$ROUNDS"; posint BENCH_WATCH_PUTS "$WATCH_PUTS"
posint BENCH_WATCH_LATENCY_PUTS "$WLAT_PUTS"; posint BENCH_WATCH_LATENCY_RATE "$WLAT_RATE"
posint BENCH_KEEPALIVE_TOTAL "$KEEPALIVE_TOTAL"; posint BENCH_TIMEOUT "${BENCH_TIMEOUT:-1}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/synod-bench.XXXXXX")"
KEEP_WORK=
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
cleanup() {
    stop_server
    if [ -n "$KEEP_WORK" ]; then echo "etcd-benchmark: outputs and server logs kept in $WORK" >&2
    else rm -rf "$WORK"; fi
}
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

# report_stats <benchmark-output> [<header>]: prints "<per-second> <p50 ms> <p99 ms>" of one
# report of etcd's pkg/report (Summary / Total / Requests/sec / ... / Latency distribution):
# the one after the line containing <header> (up to the next "... summary:" line), or the
# only one when <header> is empty. Fails unless that is exactly one report with Total,
# Requests/sec, 50% and 99% as numbers.
report_stats() {
    awk -v hdr="${2:-}" '
        function num(s) { return s ~ /^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }
        BEGIN { on = (hdr == "") }
        hdr != "" && index($0, hdr) { on = !done; next }
        hdr != "" && on && index($0, "summary:") { on = 0; done = 1 }
        on && $0 == "Summary:" { nsum++ }
        on && $1 == "Total:" && tot == "" { tot = $2 }
        on && $1 == "Requests/sec:" && rps == "" { rps = $2 }
        on && $1 == "50%" && $2 == "in" && $4 == "secs." && p50 == "" { p50 = $3 }
        on && $1 == "99%" && $2 == "in" && $4 == "secs." && p99 == "" { p99 = $3 }
        END {
            if (nsum != 1 || !num(tot) || !num(rps) || !num(p50) || !num(p99)) exit 1
            printf "%s %.2f %.2f\n", rps, p50 * 1000, p99 * 1000
        }' "$1"
}

# Per-scenario settings: ARGS (benchmark args after --endpoints), OUT, TITLE, NOTE (markdown
# lines after the command line), TIMEOUT, PARSER (sets V[<metric>] from an output file), and
# per metric: METRICS (keys), COLS (per-round column), MEANS (mean-table row), FMTS (printf).
declare -A V
setup_scenario() {
    SCEN="$1"
    OUT="$ROOT/benches/results/$SCEN.md"
    TIMEOUT="${BENCH_TIMEOUT:-120}"
    NOTE=()
    case "$SCEN" in
        put)
            ARGS=(--precise --clients=50 --conns=10 put --key-size=8 --val-size=256 "--total=$TOTAL")
            TITLE="Put benchmark"
            TIMEOUT="${BENCH_TIMEOUT:-600}"
            PARSER=parse_simple
            METRICS=(rps p50 p99)
            COLS=("throughput (req/s)" "p50 (ms)" "p99 (ms)")
            MEANS=("throughput (req/s)" "p50 latency (ms)" "p99 latency (ms)")
            FMTS=(%.0f %.2f %.2f) ;;
        watch)
            ARGS=(--precise --clients=10 --conns=10 watch --streams=10 --watch-per-stream=100
                "--put-total=$WATCH_PUTS" --put-rate=100000)
            TITLE="Watch benchmark"
            NOTE=("1000 watchers (10 streams of 100, one stream per connection) on one key, then"
                "$WATCH_PUTS puts from 10 clients, unthrottled: $((WATCH_PUTS * 1000)) events per run."
                "Watch creation: watches per second and the latency of one Watch call (it returns on"
                "the server's \"created\" response; a stream creates its watches one at a time)."
                "Events/s: events received by all watchers / time from the first put to the last event."
                "(The tool's per-event \"latency\" only times a client-side hand-off and is left out.)")
            PARSER=parse_watch
            METRICS=(crps cp50 cp99 erps)
            COLS=("watch creation (watches/s)" "creation p50 (ms)" "creation p99 (ms)" "events/s")
            MEANS=("watch creation (watches/s)" "creation p50 latency (ms)" "creation p99 latency (ms)"
                "events received (events/s)")
            FMTS=(%.0f %.2f %.2f %.0f) ;;
        watch-latency)
            ARGS=(--precise --clients=100 --conns=10 watch-latency "--total=$WLAT_PUTS" "--put-rate=$WLAT_RATE"
                --key-size=32 --val-size=32)
            TITLE="Watch latency benchmark"
            NOTE=("100 watchers (10 per connection) on one key; $WLAT_PUTS puts, one at a time, at most"
                "$WLAT_RATE per second (the first $WLAT_RATE unpaced), each waiting for its event at all 100 watchers."
                "Latency: from the put's response reaching the client to the event reaching a watcher (0 when"
                "the event came first). Events/s is paced by --put-rate: it only shows whether the server kept up.")
            PARSER=parse_simple
            METRICS=(rps p50 p99)
            COLS=("events/s" "p50 (ms)" "p99 (ms)")
            MEANS=("events received (events/s)" "p50 put-to-event latency (ms)" "p99 put-to-event latency (ms)")
            FMTS=(%.0f %.2f %.2f) ;;
        lease-keepalive)
            ARGS=(--precise --clients=50 --conns=10 lease-keepalive "--total=$KEEPALIVE_TOTAL")
            TITLE="Lease keep-alive benchmark"
            NOTE=("50 clients each grant a lease, then make $KEEPALIVE_TOTAL KeepAliveOnce calls in all; each call"
                "opens a LeaseKeepAlive stream, sends one request, reads one response and closes the stream.")
            PARSER=parse_simple
            METRICS=(rps p50 p99)
            COLS=("throughput (req/s)" "p50 (ms)" "p99 (ms)")
            MEANS=("throughput (req/s)" "p50 latency (ms)" "p99 latency (ms)")
            FMTS=(%.0f %.2f %.2f) ;;
        *) die "no such scenario $SCEN" ;;
    esac
}

# One report (put, watch-latency, lease-keepalive).
parse_simple() {
    local s
    s="$(report_stats "$1")" || return 1
    read -r 'V[rps]' 'V[p50]' 'V[p99]' <<<"$s"
}
# watch prints two reports: watch creation, then events received.
parse_watch() {
    local c e
    c="$(report_stats "$1" "Watch creation summary:")" || return 1
    e="$(report_stats "$1" "Watch events received summary:")" || return 1
    read -r 'V[crps]' 'V[cp50]' 'V[cp99]' <<<"$c"
    read -r 'V[erps]' _ _ <<<"$e"
}

# The tails of a run's benchmark output (progress bars are \r-separated) and server log.
show_run() {
    echo "--- benchmark output (tail) of $1:" >&2
    tr '\r' '\n' <"$1" | grep -v '^[[:space:]]*$' | tail -40 >&2 || true
    echo "--- server log (tail) $LOG:" >&2
    tail -40 "$LOG" >&2 || true
}

# bench <flavor> <round>: sets V[<metric>] for every metric of the scenario. Runs in the main
# shell (no subshell) so the EXIT trap always sees the running server.
bench() {
    local flavor="$1" round="$2" out rc=0
    # Flush every dirty page the previous run left behind (etcd's bbolt leaves many to the
    # kernel's write-back): otherwise that write-back competes with the next run's fsyncs and
    # penalises whichever server happens to run second.
    sync
    start_server "$flavor" "$SCEN-$flavor-$round"
    out="$WORK/$SCEN-$flavor-$round/benchmark.out"
    echo "--- $SCEN: $flavor round $round: benchmark --endpoints=$ENDPOINT ${ARGS[*]}" >&2
    timeout "$TIMEOUT" "$BENCHMARK_BIN" --endpoints="$ENDPOINT" "${ARGS[@]}" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        KEEP_WORK=1; show_run "$out"
        if [ "$rc" -eq 124 ]; then die "$SCEN: benchmark against $flavor did not finish in $TIMEOUT s"; fi
        die "$SCEN: benchmark against $flavor failed (exit status $rc)"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        KEEP_WORK=1; show_run "$out"; die "$SCEN: $flavor exited during the benchmark"
    fi
    stop_server
    if grep -q "Error distribution:" "$out"; then
        KEEP_WORK=1; show_run "$out"; die "$SCEN: requests failed against $flavor (see Error distribution)"
    fi
    V=()
    if ! "$PARSER" "$out"; then
        KEEP_WORK=1; show_run "$out"; die "$SCEN: could not parse the benchmark output ($out)"
    fi
}

mean() { awk -v s="$1" -v n="$ROUNDS" -v f="$2" 'BEGIN{printf f, s/n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }

commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! (cd "$ROOT" && git diff --quiet HEAD 2>/dev/null); then
    commit+=" + uncommitted changes"
fi

run_scenario() {
    setup_scenario "$1"
    local round flavor i k v row msg e s n="${#METRICS[@]}" rows=""
    local -A sum=()
    for round in $(seq 1 "$ROUNDS"); do
        for flavor in etcd synod; do
            bench "$flavor" "$round"
            row="| $flavor | $round |"; msg=""
            for ((i = 0; i < n; i++)); do
                k="${METRICS[$i]}"; v="$(printf "${FMTS[$i]}" "${V[$k]}")"
                row+=" $v |"; msg+="${msg:+, }${COLS[$i]} $v"
                sum[$flavor.$k]="$(awk -v a="${sum[$flavor.$k]:-0}" -v b="${V[$k]}" 'BEGIN{printf "%.6f", a+b}')"
            done
            echo "    $flavor round $round: $msg" >&2
            rows+="$row"$'\n'
        done
    done

    mkdir -p "$(dirname "$OUT")"
    {
        echo "# $TITLE: synod vs etcd"
        echo
        echo "\`benchmark ${ARGS[*]}\` (etcd 3.4 tools/benchmark), single member on 127.0.0.1,"
        echo "fresh data dir per run, runs alternating etcd/synod, $ROUNDS round(s)."
        if [ "${#NOTE[@]}" -gt 0 ]; then echo; printf '%s\n' "${NOTE[@]}"; fi
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
        echo "- etcd: $("$ETCD_BIN" --version | head -1)"
        echo "- synod: $SYNOD_BIN ($commit)"
        echo
        printf '| server | round |'; printf ' %s |' "${COLS[@]}"; echo
        printf '|---|---|'; printf -- '---|%.0s' "${COLS[@]}"; echo
        printf '%s' "$rows"
        echo
        echo "| mean over rounds | etcd | synod | synod/etcd |"
        echo "|---|---|---|---|"
        for ((i = 0; i < n; i++)); do
            e="$(mean "${sum[etcd.${METRICS[$i]}]}" "${FMTS[$i]}")"
            s="$(mean "${sum[synod.${METRICS[$i]}]}" "${FMTS[$i]}")"
            echo "| ${MEANS[$i]} | $e | $s | $(ratio "$s" "$e") |"
        done
    } >"$OUT"
    cat "$OUT"
}

for scen in "${SCENARIOS[@]}"; do
    run_scenario "$scen"
done
