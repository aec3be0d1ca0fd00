#!/usr/bin/env bash
# bench/run.sh - sluice's throughput benchmark, with a FastAPI peer measured in
# the same run. Builds nothing: expects build/sluice (make build/sluice), wrk,
# sqlite3 and /usr/bin/python3 with fastapi and uvicorn (make bench installs them).
#
#   bash bench/run.sh                 # the full benchmark (~6 minutes)
#   N=1 DURATION=5s bash bench/run.sh # a quick look
#
# For each target (sluice, then the peer) and each scenario it starts the
# server on a fresh data directory, warms it up, runs wrk N times and keeps
# every run; the table shows the median run (by throughput) of each scenario.
# Scenarios, all with CONNS keep-alive connections and THREADS wrk threads:
#   batch100   NDJSON bodies of 100 rows (~200 bytes a row), key-less dataset
#   single     one JSON object a request, key-less dataset
#   batch100k  as batch100 into `judgments` (unique key case_number,
#              on_duplicate: reject): a fresh data directory for every run,
#              every row a new case number (skip with KEYED=0)
# During each run it samples the server's RSS (VmRSS every 0.2 s; for sluice
# also VmHWM after resetting it), the CPU time of the server and of wrk, and
# afterwards counts the rows really stored (sqlite3 count(*)).
# wrk and the server share the machine's cores: wrk's CPU is reported.
#
# Output: a Markdown table on stdout and the results section of
# docs/performance.md (between its bench:results markers; the rest of the
# file is kept). Raw results: $WORK/results.jsonl (kept with KEEP=1).
#
# Environment: N (3), DURATION (10s), WARMUP (3s), THREADS (2), CONNS (64),
# PORT (18080; the peer uses PORT+1), KEYED (1), PEER (1: measure the peer),
# DOC (docs/performance.md; DOC= to write none), KEEP (0), TMPDIR,
# QUIET_PCT (15) and QUIET_WAIT (120): before each measured run, wait up to
# QUIET_WAIT seconds for the rest of the machine to use at most QUIET_PCT% of
# one core (the CPU others used during each run is reported either way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
PEER_PORT=$((PORT + 1))
KEYED=${KEYED:-1}
PEER=${PEER:-1}
DOC=${DOC-$ROOT/docs/performance.md}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
PY=/usr/bin/python3
. "$ROOT/bench/lib.sh"
SLUICE=$ROOT/build/sluice
CMDLINE="N=$N DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNS=$CONNS KEYED=$KEYED PEER=$PEER bash bench/run.sh"

[ -x "$SLUICE" ] || die "no $SLUICE: run 'make build/sluice' first"
command -v wrk >/dev/null || die "no wrk: apt-get install -y wrk (or make bench)"
command -v sqlite3 >/dev/null || die "no sqlite3: apt-get install -y sqlite3"
if [ "$PEER" = 1 ]; then
    "$PY" -c 'import fastapi, uvicorn' 2>/dev/null ||
        die "the peer needs python3-fastapi and python3-uvicorn (apt-get install -y python3-fastapi python3-uvicorn)"
fi
for p in "$PORT" "$PEER_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is in use (set PORT)"; fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
# A private copy: a rebuild of build/sluice during the run does not change what is measured.
cp "$SLUICE" "$WORK/sluice"
SLUICE=$WORK/sluice
RESULTS=$WORK/results.jsonl

cleanup() {
    stop_sampler
    stop_server
    if [ "$KEEP" = 1 ]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "run.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM


# ---- the machine -------------------------------------------------------------
log "machine facts and the cost of one fdatasync in $WORK"
FSYNC_JSON=$("$PY" "$ROOT/bench/fdatasync_cost.py" "$WORK" 2000)
disk_facts "$WORK"
"$PY" - "$WORK/machine.json" <<EOF
import json, sys
json.dump({
  "nproc": "$(nproc)",
  "cpu": """$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)""",
  "mem": "$(free -h | awk '/^Mem:/ {print $2}')",
  "kernel": "$(uname -sr)",
  "os": """$(. /etc/os-release && echo "$PRETTY_NAME")""",
  "virt": "$(systemd-detect-virt 2>/dev/null || echo unknown)",
  "disk": "$DATA_DEV ($DATA_FS$( [ -n "$DISK_MODEL" ] && echo ", $DISK_MODEL")), rotational=$ROTA",
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "git": "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [ -n "$(git status --porcelain -- src Makefile 2>/dev/null)" ] && echo ' (src/ or Makefile modified)')",
  "sluice_version": "$("$SLUICE" --version 2>/dev/null | head -1 || echo unknown)",
  "wrk": "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)",
  "python": "$("$PY" --version 2>&1)",
  "fastapi": "$("$PY" -c 'import fastapi, uvicorn; print(f"fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}")' 2>/dev/null || echo none)",
  "fdatasync": json.loads('''$FSYNC_JSON'''),
  "command": "$CMDLINE",
  "n": $N, "duration": "$DURATION", "warmup": "$WARMUP", "threads": $THREADS, "conns": $CONNS,
}, open(sys.argv[1], "w"), indent=1)
EOF

# ---- servers -----------------------------------------------------------------

write_config() { # the judgments dataset of examples/sluice.yaml, and `bench`: the same schema, no key
    cat >"$1" <<EOF
# bench/run.sh's configuration (generated). Defaults except request logging,
# off as the peer's access log is off.
listen: 127.0.0.1:$PORT
log: {requests: false}
auth: {dev_bypass: true}   # loopback only; the peer has no auth either
datasets:
  - name: judgments
    key: case_number
    on_duplicate: reject
$EVENTS_SCHEMA
  - name: bench
$EVENTS_SCHEMA
EOF
}


DB=""
start_sluice() { # DIR
    mkdir -p "$1"
    write_config "$1/bench.yaml"
    "$SLUICE" serve --config "$1/bench.yaml" --listen "127.0.0.1:$PORT" --data-dir "$1" \
        >"$1/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "http://127.0.0.1:$PORT/healthz" || { cat "$1/server.log" >&2; die "sluice did not start"; }
    DB=$1/sluice.db
    URL=http://127.0.0.1:$PORT
}
start_peer() { # DIR
    mkdir -p "$1"
    PEER_DB=$1/peer.db "$PY" -m uvicorn --app-dir "$ROOT/bench" peer_fastapi:app \
        --host 127.0.0.1 --port "$PEER_PORT" --workers 2 --no-access-log --log-level warning \
        >"$1/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "http://127.0.0.1:$PEER_PORT/openapi.json" || { cat "$1/server.log" >&2; die "the peer did not start"; }
    sleep 1 # both workers up
    DB=$1/peer.db
    URL=http://127.0.0.1:$PEER_PORT
}

server_pids() { # the server and its children (uvicorn's workers)
    echo "$SERVER_PID"
    pgrep -P "$SERVER_PID" 2>/dev/null || true
}
sampler() { # OUTFILE PIDS...: the largest sum of VmRSS (kB), every 0.2 s
    local out=$1 max=0 tot k v _ p
    shift
    while :; do
        tot=0
        for p in "$@"; do
            while read -r k v _; do
                if [ "$k" = "VmRSS:" ]; then tot=$((tot + v)); break; fi
            done <"/proc/$p/status" 2>/dev/null || true
        done
        if [ "$tot" -gt "$max" ]; then max=$tot; echo "$max" >"$out"; fi
        sleep 0.2
    done
}
row_count() { # DATASET
    local n
    n=$(sqlite3 "$DB" "PRAGMA busy_timeout=10000; SELECT count(*) FROM \"ds_$1\";" 2>/dev/null | tail -1) || true
    echo "${n:-0}"
}

# run_wrk TARGET SCENARIO RUN ROWS DATASET CASE_BASE DURATION: one wrk run, one line in results.jsonl
run_wrk() {
    local target=$1 scen=$2 run=$3 rows=$4 ds=$5 base=$6 dur=$7
    local tag="$target/$scen/$run"
    local out=$WORK/wrk-$target-$scen-$run.txt
    local before after c0 c1 m0 m1 rss hwm=0 wrk_cpu
    before=$(row_count "$ds")
    [ "$run" = warmup ] || wait_quiet
    if [ "$target" = sluice ]; then echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true; fi
    echo 0 >"$WORK/rss"
    # shellcheck disable=SC2046
    sampler "$WORK/rss" $(server_pids) &
    SAMPLER_PID=$!
    c0=$(cpu_ticks $(server_pids))
    m0=$(machine_ticks)
    local TIMEFORMAT='%U %S'
    { time ROWS=$rows DATASET=$ds CASE_BASE=$base THREADS=$THREADS \
        wrk -t"$THREADS" -c"$CONNS" -d"$dur" --timeout 10s --latency -s "$ROOT/bench/load.lua" "$URL" \
        >"$out" 2>"$out.err"; } 2>"$out.time"
    c1=$(cpu_ticks $(server_pids))
    m1=$(machine_ticks)
    stop_sampler
    rss=$(cat "$WORK/rss")
    if [ "$target" = sluice ]; then
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")
    fi
    sleep 0.5 # answers wrk stopped waiting for are committed by now
    after=$(row_count "$ds")
    wrk_cpu=$(awk '{print $1 + $2}' "$out.time")
    local w
    w=$(sed -n 's/^WRKJSON //p' "$out")
    [ -n "$w" ] || { cat "$out" "$out.err" >&2; die "$tag: wrk printed no result"; }
    echo "{\"target\":\"$target\",\"scenario\":\"$scen\",\"run\":\"$run\",\"dataset\":\"$ds\",\"wrk\":$w,\"rss_kb\":$rss,\"hwm_kb\":$hwm,\"server_cpu_s\":$(awk -v t=$((c1 - c0)) -v h="$CLK_TCK" 'BEGIN {print t / h}'),\"machine_cpu_s\":$(awk -v t=$((m1 - m0)) -v h="$CLK_TCK" 'BEGIN {print t / h}'),\"wrk_cpu_s\":$wrk_cpu,\"stored_before\":${before:-0},\"stored_after\":${after:-0}}" >>"$RESULTS"
    if [ "$run" != warmup ]; then
        "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); w=r["wrk"]; print("  %-26s %9.0f req/s %10.0f rows/s  p50 %6.1f ms  p99 %6.1f ms  rss %5.1f MB  stored %d (accepted %d)  bad %d  errors %d  server cpu %.1fs  wrk cpu %.1fs  others %.1fs" % (sys.argv[2], w["req_per_s"], w["rows_per_s"], w["lat_p50_us"]/1e3, w["lat_p99_us"]/1e3, r["rss_kb"]/1024, r["stored_after"]-r["stored_before"], w["accepted"], w["bad_status"], w["socket_errors"]+w["timeouts"], r["server_cpu_s"], r["wrk_cpu_s"], r["machine_cpu_s"]-r["server_cpu_s"]-r["wrk_cpu_s"]))' "$(tail -1 "$RESULTS")" "$tag" >&2
    fi
}

# scenario TARGET SCENARIO ROWS DATASET FRESH_PER_RUN
scenario() {
    local target=$1 scen=$2 rows=$3 ds=$4 fresh=$5 i dir
    log "$target: $scen ($rows rows a request, dataset $ds, $N x $DURATION, $CONNS connections)"
    for i in $(seq 1 "$N"); do
        if [ "$fresh" = 1 ] || [ "$i" = 1 ]; then
            stop_server
            dir=$WORK/$target-$scen-$i
            "start_$target" "$dir"
            # keyed: the warm-up's case numbers (from 4,000,000 on) do not meet the run's
            # (from 0 on) as long as a wrk thread sends fewer than ~1M rows in the warm-up
            run_wrk "$target" "$scen" warmup "$rows" "$ds" 4000000 "$WARMUP"
        fi
        run_wrk "$target" "$scen" "$i" "$rows" "$ds" 0 "$DURATION"
        if [ "$fresh" != 1 ] && [ "$i" = "$N" ]; then du -sh "$dir" | awk '{print "  data dir: " $1}' >&2; fi
    done
    stop_server
}

targets=(sluice)
if [ "$PEER" = 1 ]; then targets+=(peer); fi
for t in "${targets[@]}"; do
    scenario "$t" batch100 100 bench 0
    scenario "$t" single 1 bench 0
    if [ "$KEYED" = 1 ]; then scenario "$t" batch100k 100 judgments 1; fi
done

# ---- report --------------------------------------------------------------------
"$PY" "$ROOT/bench/report.py" "$WORK/machine.json" "$RESULTS" "${DOC:-}"
