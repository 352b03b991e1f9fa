#!/usr/bin/env bash
# ZooKeeper 3.8 vs synod's embedded ZooKeeper gateway, measured with `synod-bench zk`
# (benches/synod-bench: a ZooKeeper-protocol load generator written here), one or more
# scenarios per invocation:
#
#   benches/zk-benchmark.sh [--smoke] [scenario ...]   scenarios: create set get, all (= every one);
#                                                      default: all
#
# Every scenario runs `synod-bench zk <scenario> --endpoints <zk addr> --sessions 16 --total N
# --value-size 256 --pipeline 1 --json <file>`: 16 sessions, one TCP connection each, each a
# synchronous client (one request outstanding), sharing N operations:
#
#   create  N persistent znodes with 256-byte data, distinct paths under one parent
#           /bench-<run id> (created first, untimed).
#   set     N setData (version -1) of 256 bytes over 1000 znodes created first (untimed).
#   get     N getData (no watch) over 1000 znodes of 256 bytes created first (untimed).
#
# -> throughput (operations with err 0 per second, from the first request to the last reply) and
# p50/p99/p99.9 latency (ms). Every reply's err is checked; error replies are counted by code.
#
# Each run starts a fresh server on 127.0.0.1 with a new temp data dir and free ports:
#   zookeeper  java ... QuorumPeerMain <cfg> (Debian's zookeeper 3.8 package, JVM defaults), cfg:
#              tickTime=2000, dataDir=<tmp>, clientPort, clientPortAddress=127.0.0.1,
#              admin.enableServer=false, 4lw.commands.whitelist=* (forceSync left at its default:
#              yes, every transaction log write is fsynced before the reply)
#   synod      --name m0 --data-dir <tmp> (client/peer URLs on free ports)
#              --zk-listen-addr 127.0.0.1:<port> (every other setting its default: durable, the
#              raft log fsynced before a write is answered, --zk-tick-time 2000)
# ZooKeeper's JVM starts cold in every run, and 20000 operations are not enough for its JIT to
# reach steady state (a warm ZooKeeper here does ~2x the setData/s of a fresh one): WARMUP=50000
# compares the servers' steady state instead.
# Runs alternate between the servers, the first one swapping every round (round 1: zookeeper,
# synod; round 2: synod, zookeeper; ...). `sync` before every run, so that write-back left by
# the previous run does not land in the next one. The synod binary is copied into the temp dir
# first, so a concurrent rebuild cannot swap it mid-comparison.
#
# The markdown report (per-run rows, then medians over the rounds and synod/zookeeper ratios)
# is (re)written after every scenario to benches/results/zk-<UTC date>.md (RESULTS overrides),
# and printed at the end. Every server is stopped on exit.
#
# A run whose replies carried errors (synod-bench exit status 1) is kept in the report with its
# error count, and makes the script's exit status 1 at the end (ALLOW_ERRORS=1: 0). A run that
# could not complete (synod-bench exit status 2: connection lost, malformed reply, timeout) or a
# server that dies stops the script at once with the tails of the output and the server log, and
# keeps the temp dir.
#
# --smoke: a quick check of the whole pipeline for CI: TOTAL=200, ROUNDS=1, NODES=100 unless set,
# and the report goes to the temp dir (printed, not kept) unless RESULTS is set.
#
# Environment:
#   ROUNDS         runs per server and scenario (default 3)
#   TOTAL          measured operations per run (default 20000)
#   SESSIONS       sessions (default 16)           VALUE_SIZE  bytes per value (default 256)
#   PIPELINE       requests outstanding per session (default 1)
#   NODES          set/get: znodes (default 1000)  WARMUP      untimed operations first (default 0)
#   BENCH_TIMEOUT  seconds one synod-bench run may take (default 600)
#   RESULTS        the report's path (default benches/results/zk-<date>.md)
#   ALLOW_ERRORS   1: exit 0 even if some replies carried errors
#   SYNOD_BIN      default <target>/release/synod (cargo build --release -p synod)
#   SYNOD_BENCH_BIN  default <target>/release/synod-bench, built with
#                  `cargo build --release -p synod-bench` if missing
#   JAVA           default java;  ZK_CLASSPATH  default Debian's jars under /usr/share/java
set -euo pipefail
export LC_NUMERIC=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

die() { echo "zk-benchmark: ERROR: $*" >&2; exit 1; }
usage() { echo "usage: $0 [--smoke] [create|set|get|all ...]   (default: all)"; }

ALL_SCENARIOS=(create set get)
SCENARIOS=()
SMOKE=
add_scenario() {
    local s
    for s in "${SCENARIOS[@]}"; do [ "$s" = "$1" ] && return 0; done
    SCENARIOS+=("$1")
}
for arg in "$@"; do
    case "$arg" in
        create|set|get) add_scenario "$arg" ;;
        all) for s in "${ALL_SCENARIOS[@]}"; do add_scenario "$s"; done ;;
        --smoke) SMOKE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$arg'" ;;
    esac
done
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")

if [ -n "$SMOKE" ]; then
    TOTAL="${TOTAL:-200}"; ROUNDS="${ROUNDS:-1}"; NODES="${NODES:-100}"
fi
ROUNDS="${ROUNDS:-3}"
TOTAL="${TOTAL:-20000}"
SESSIONS="${SESSIONS:-16}"
VALUE_SIZE="${VALUE_SIZE:-256}"
PIPELINE="${PIPELINE:-1}"
NODES="${NODES:-1000}"
WARMUP="${WARMUP:-0}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$target_dir" in /*) ;; *) target_dir="$ROOT/$target_dir" ;; esac
SYNOD_BIN="${SYNOD_BIN:-$target_dir/release/synod}"
JAVA="${JAVA:-java}"
J=/usr/share/java
ZK_CLASSPATH="${ZK_CLASSPATH:-$J/zookeeper.jar:$J/zookeeper-jute.jar:$J/slf4j-api.jar:$J/slf4j-log4j12.jar:$J/log4j-1.2.jar}"

posint() { [[ "$2" =~ ^[0-9]+$ && "$2" -ge "${3:-1}" ]] || die "$1 must be an integer >= ${3:-1} (got '$2')"; }
posint ROUNDS "$ROUNDS"; posint TOTAL "$TOTAL"; posint SESSIONS "$SESSIONS"; posint VALUE_SIZE "$VALUE_SIZE" 0
posint PIPELINE "$PIPELINE"; posint NODES "$NODES"; posint WARMUP "$WARMUP" 0; posint BENCH_TIMEOUT "$BENCH_TIMEOUT"

[ -x "$SYNOD_BIN" ] || die "synod not found at $SYNOD_BIN (cargo build --release -p synod, or set SYNOD_BIN)"
command -v "$JAVA" >/dev/null || die "java not found (apt-get install zookeeper)"
IFS=: read -r -a cp_entries <<<"$ZK_CLASSPATH"
for f in "${cp_entries[@]}"; do
    [ -e "$f" ] || die "ZooKeeper classpath entry $f not found (apt-get install zookeeper, or set ZK_CLASSPATH)"
done
if command -v jq >/dev/null; then
    jget() { jq -r "$2" "$1"; }
else
    jget() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].lstrip(".").split("."): v=v[k]
print(v)' "$1" "$2"; }
fi
if [ -z "${SYNOD_BENCH_BIN:-}" ]; then
    SYNOD_BENCH_BIN="$target_dir/release/synod-bench"
    if [ ! -x "$SYNOD_BENCH_BIN" ]; then
        echo "zk-benchmark: building synod-bench (cargo build --release -p synod-bench)" >&2
        (cd "$ROOT" && cargo build --release -p synod-bench) || die "could not build synod-bench"
    fi
fi
[ -x "$SYNOD_BENCH_BIN" ] || die "synod-bench not found at $SYNOD_BENCH_BIN"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/synod-zk-bench.XXXXXX")"
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
    if [ -n "$KEEP_WORK" ]; then echo "zk-benchmark: outputs and server logs kept in $WORK" >&2
    else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The synod under test, copied: a rebuild during the comparison cannot swap it.
cp "$SYNOD_BIN" "$WORK/synod"
SYNOD="$WORK/synod"
SYNOD_BUILT="$(date -u -r "$SYNOD_BIN" +%Y-%m-%dT%H:%MZ)"
SYNOD_SUM="$(sha256sum "$SYNOD" | cut -c1-12)"

if [ -n "$SMOKE" ]; then OUT="${RESULTS:-$WORK/zk-smoke.md}"
else OUT="${RESULTS:-$ROOT/benches/results/zk-$(date -u +%Y-%m-%d).md}"; fi

# A port in 15000..32000 (below the ephemeral range, away from etcd e2e's 20000+) that nothing
# listens on and that this script has not handed out yet.
declare -A USED_PORTS=()
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((15000 + RANDOM % 17000))
        if [ "$p" -ge 19990 ] && [ "$p" -lt 20210 ]; then continue; fi
        [ -z "${USED_PORTS[$p]:-}" ] || continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then USED_PORTS[$p]=1; echo "$p"; return 0; fi
    done
    die "no free port found"
}

# four_letter <port> <word>: the server's answer to a four-letter word (empty if none in 2 s).
four_letter() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' _ "$1" "$2" 2>/dev/null || true
}

# start_server <flavor> <run-id>: starts it in the background and waits until it answers `srvr`
# as a serving standalone server. Sets SERVER_PID, ENDPOINT, LOG, and VERSION (srvr's first line).
start_server() {
    local flavor="$1" id="$2" dir zport cport pport
    dir="$WORK/$id"; mkdir -p "$dir"
    zport="$(free_port)"
    LOG="$dir/server.log"
    case "$flavor" in
        zookeeper)
            cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/data
clientPort=$zport
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
EOF
            cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
EOF
            "$JAVA" -Dlog4j.configuration="file:$dir/log4j.properties" -Dzookeeper.log.dir="$dir" \
                -cp "$dir:$ZK_CLASSPATH" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
                >"$LOG" 2>&1 &
            ;;
        synod)
            cport="$(free_port)"; pport="$(free_port)"
            "$SYNOD" --name m0 --data-dir "$dir/data" \
                --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
                --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
                --initial-cluster "m0=http://127.0.0.1:$pport" --initial-cluster-state new \
                --initial-cluster-token synod-zk-bench --zk-listen-addr "127.0.0.1:$zport" \
                >"$LOG" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    ENDPOINT="127.0.0.1:$zport"
    local answer
    for _ in $(seq 1 150); do   # at most ~30 s
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -40 "$LOG" >&2; KEEP_WORK=1; die "$flavor exited during startup"
        fi
        answer="$(four_letter "$zport" srvr)"
        if grep -q '^Mode: standalone' <<<"$answer"; then
            VERSION="$(head -1 <<<"$answer")"
            return 0
        fi
        sleep 0.2
    done
    tail -40 "$LOG" >&2; KEEP_WORK=1; die "$flavor not serving after 30 s"
}

# show_run <run dir>: the tails of synod-bench's output and of the server log.
show_run() {
    echo "--- synod-bench output in $1:" >&2
    tail -20 "$1/synod-bench.out" "$1/synod-bench.err" >&2 || true
    echo "--- server log (tail) $LOG:" >&2
    tail -40 "$LOG" >&2 || true
}

declare -A VERSIONS=()
ERROR_RUNS=0
# One row per run: scenario server round ok_throughput p50 p99 p999 errors error_codes
TSV="$WORK/runs.tsv"
: >"$TSV"

# bench <scenario> <flavor> <round>: one run, appended to $TSV. Runs in the main shell (no
# subshell) so the EXIT trap always sees the running server.
bench() {
    local scen="$1" flavor="$2" round="$3" out rc=0 id
    id="$scen-$flavor-$round"
    sync
    start_server "$flavor" "$id"
    VERSIONS[$flavor]="$VERSION"
    out="$WORK/$id/synod-bench.json"
    local args=(zk "$scen" --endpoints "$ENDPOINT" --sessions "$SESSIONS" --total "$TOTAL"
        --value-size "$VALUE_SIZE" --pipeline "$PIPELINE" --nodes "$NODES" --warmup "$WARMUP"
        --timeout "$BENCH_TIMEOUT" --json "$out" --quiet)
    echo "--- $scen: $flavor round $round: synod-bench ${args[*]}" >&2
    timeout "$((BENCH_TIMEOUT + 30))" "$SYNOD_BENCH_BIN" "${args[@]}" >"$WORK/$id/synod-bench.out" \
        2>"$WORK/$id/synod-bench.err" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
        KEEP_WORK=1; show_run "$WORK/$id"
        die "$scen: synod-bench against $flavor failed (exit status $rc)"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        KEEP_WORK=1; show_run "$WORK/$id"; die "$scen: $flavor exited during the benchmark"
    fi
    stop_server
    local tput p50 p99 p999 nerr codes
    tput="$(jget "$out" .throughput)" && p50="$(jget "$out" .latency_ms.p50)" &&
        p99="$(jget "$out" .latency_ms.p99)" && p999="$(jget "$out" .latency_ms.p999)" &&
        nerr="$(jget "$out" .errors)" ||
        { KEEP_WORK=1; show_run "$WORK/$id"; die "$scen: could not parse synod-bench's record ($out)"; }
    codes="$(jq -c .params.errors_by_code "$out" 2>/dev/null || echo '?')"
    local wnerr
    wnerr="$(jget "$out" .params.warmup_errors 2>/dev/null || echo 0)"
    if [ "$wnerr" != 0 ]; then
        echo "zk-benchmark: WARNING: $scen against $flavor: $wnerr error replies in the warmup" \
            "(by code: $(jq -c .params.warmup_errors_by_code "$out" 2>/dev/null || echo '?'))" >&2
    fi
    if [ "$nerr" != 0 ] || [ "$wnerr" != 0 ]; then ERROR_RUNS=$((ERROR_RUNS + 1)); fi
    if [ "$nerr" != 0 ]; then
        echo "zk-benchmark: WARNING: $scen against $flavor: $nerr error replies (by code: $codes)" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$flavor" "$round" "$tput" "$p50" "$p99" "$p999" "$nerr" "$codes" >>"$TSV"
    printf '    %s round %s: %.0f ops/s, p50 %s ms, p99 %s ms, p99.9 %s ms, errors %s\n' \
        "$flavor" "$round" "$tput" "$p50" "$p99" "$p999" "$nerr" >&2
}

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! git diff --quiet HEAD 2>/dev/null; then commit+=" + uncommitted changes"; fi

# The report from $TSV: per-run rows, then per scenario the medians and synod/zookeeper ratios.
write_report() {
    mkdir -p "$(dirname "$OUT")"
    {
        echo "# ZooKeeper protocol benchmark: synod's gateway vs ZooKeeper"
        echo
        echo "\`synod-bench zk <scenario> --sessions $SESSIONS --total $TOTAL --value-size $VALUE_SIZE --pipeline $PIPELINE\`"
        echo "(benches/synod-bench; set/get over --nodes $NODES znodes created first, untimed; --warmup $WARMUP),"
        echo "$SESSIONS sessions, each one connection with one request outstanding at a time; a fresh"
        echo "server per run on 127.0.0.1 with a new data dir, both durable (ZooKeeper forceSync=yes,"
        echo "synod's defaults); runs alternating, $ROUNDS round(s); \`benches/zk-benchmark.sh\`."
        echo "Throughput counts replies with err 0 per second; latencies are per request, in ms."
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), load average before the run: $LOAD_BEFORE"
        echo "- zookeeper: ${VERSIONS[zookeeper]:-?} ($("$JAVA" -version 2>&1 | head -1))"
        echo "- synod: $SYNOD_BIN (built $SYNOD_BUILT, sha256 $SYNOD_SUM; repo at $commit),"
        echo "  gateway reports: ${VERSIONS[synod]:-?}"
        echo
        echo "| scenario | server | round | ops/s | p50 (ms) | p99 (ms) | p99.9 (ms) | errors |"
        echo "|---|---|---|---|---|---|---|---|"
        awk -F'\t' '{ e = ($8 == 0) ? "0" : $8 " " $9;
            printf "| %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %s |\n", $1, $2, $3, $4, $5, $6, $7, e }' "$TSV"
        echo
        echo "Medians over the rounds (ratio: synod / zookeeper; for ops/s higher is better, for"
        echo "latencies lower is better):"
        echo
        echo "| scenario | metric | zookeeper | synod | synod/zookeeper |"
        echo "|---|---|---|---|---|"
        awk -F'\t' '
            function median(key,    n, i, j, t, a) {
                n = split(vals[key], a, " ")
                for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
                if (n == 0) return ""
                return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            {
                if (!($1 in seen)) { seen[$1] = 1; order[++ns] = $1 }
                for (m = 4; m <= 8; m++) vals[$1 SUBSEP $2 SUBSEP m] = vals[$1 SUBSEP $2 SUBSEP m] " " $m
            }
            END {
                name[4] = "ops/s"; name[5] = "p50 (ms)"; name[6] = "p99 (ms)"; name[7] = "p99.9 (ms)"; name[8] = "errors (median)"
                fmt[4] = "%.0f"; fmt[5] = "%.2f"; fmt[6] = "%.2f"; fmt[7] = "%.2f"; fmt[8] = "%.0f"
                for (i = 1; i <= ns; i++) {
                    s = order[i]
                    for (m = 4; m <= 8; m++) {
                        z = median(s SUBSEP "zookeeper" SUBSEP m); y = median(s SUBSEP "synod" SUBSEP m)
                        zs = (z == "") ? "-" : sprintf(fmt[m], z); ys = (y == "") ? "-" : sprintf(fmt[m], y)
                        r = (z != "" && y != "" && z + 0 > 0) ? sprintf("%.2f", y / z) : "-"
                        if (m == 8) r = "-"
                        if (m == 4 && r != "-") r = r ((y + 0 >= z + 0) ? " (ok)" : " (**below**)")
                        printf "| %s | %s | %s | %s | %s |\n", s, name[m], zs, ys, r
                    }
                }
            }' "$TSV"
        if [ "$ERROR_RUNS" -gt 0 ]; then
            echo
            echo "**$ERROR_RUNS run(s) had error replies** (measured or in the warmup; codes: -1 SystemError,"
            echo "-101 NoNode, -110 NodeExists, ...); their ops/s counts only the replies with err 0."
        fi
    } >"$OUT"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for scen in "${SCENARIOS[@]}"; do
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then order=(zookeeper synod); else order=(synod zookeeper); fi
        for flavor in "${order[@]}"; do
            bench "$scen" "$flavor" "$round"
        done
    done
    write_report
done
cat "$OUT"
if [ -n "$SMOKE" ] && [ -z "${RESULTS:-}" ]; then echo "(smoke run: report not kept)"; else echo "(written to $OUT)"; fi
if [ "$ERROR_RUNS" -gt 0 ]; then
    echo "zk-benchmark: $ERROR_RUNS run(s) had error replies" >&2
    [ "${ALLOW_ERRORS:-}" = 1 ] || exit 1
fi
