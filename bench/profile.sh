#!/usr/bin/env bash
# bench/profile.sh - where sluice's time goes under the benchmark's load.
#
#   bash bench/profile.sh [batch|single]    (default batch; needs perf, wrk)
#
# Starts build/sluice on a fresh temp data dir with bench/run.sh's config,
# warms it up, then under ROWS=100 (batch) or ROWS=1 (single) load from
# bench/load.lua (2 wrk threads, 64 connections):
#   1. CPU profile: perf record -g (DWARF unwinding) of the server for
#      PERF_SECS (6) s; prints the top functions by self time and by
#      inclusive time, and the CPU of each server thread;
#   2. writer timeline: uprobes on ingest_apply (one job's inserts),
#      sqlite3WalFrames (a commit's WAL write + fdatasync) and
#      sqlite3_wal_checkpoint_v2 (the automatic checkpoint, run by the writer
#      thread after a commit): how much of the writer's wall time each takes.
# Leaves its files in $WORK (printed) with KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-batch}
PORT=${PORT:-18090}
PERF_SECS=${PERF_SECS:-6}
case "$MODE" in batch) ROWS=100 ;; single) ROWS=1 ;; *) echo "usage: $0 [batch|single]" >&2; exit 2 ;; esac
command -v perf >/dev/null || { echo "profile.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
[ -x "$ROOT/build/sluice" ] || { echo "profile.sh: run 'make build/sluice' first" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-profile.XXXXXX")
cp "$ROOT/build/sluice" "$WORK/sluice"
SLUICE=$WORK/sluice
. "$ROOT/bench/lib.sh" # EVENTS_SCHEMA
LIBSQLITE=$(ldd "$SLUICE" | awk '/libsqlite3/ {print $3}')
PID=""
PROBES=0
cleanup() {
    [ "$PROBES" = 1 ] && perf probe -q -d 'probe_sluice:*' -d 'probe_libsqlite3:*' 2>/dev/null || true
    if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "profile.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

cat >"$WORK/bench.yaml" <<EOF
log: {requests: false}
auth: {dev_bypass: true}   # loopback only, as in bench/run.sh
datasets:
  - name: bench
$EVENTS_SCHEMA
EOF
mkdir "$WORK/data"
"$SLUICE" serve --config "$WORK/bench.yaml" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done

load() { # SECONDS
    ROWS=$ROWS DATASET=bench wrk -t2 -c64 -d"$1"s --timeout 10s --latency -s "$ROOT/bench/load.lua" \
        "http://127.0.0.1:$PORT" | sed -n 's/^WRKJSON //p'
}
load 3 >/dev/null # warm-up

echo "== CPU profile, $MODE ($ROWS rows a request), ${PERF_SECS}s"
load $((PERF_SECS + 4)) >"$WORK/wrk1.json" &
LOADPID=$!
sleep 2
snap() { for t in /proc/"$PID"/task/*; do read -r -a f <"$t/stat"; echo "${t##*/} $((f[13] + f[14]))"; done; }
snap >"$WORK/t0"
perf record -q -F 499 --call-graph dwarf,16384 -p "$PID" -o "$WORK/perf.data" -- sleep "$PERF_SECS" 2>/dev/null
snap >"$WORK/t1"
wait "$LOADPID"
echo "load: $(cat "$WORK/wrk1.json")"
echo "-- CPU of each server thread (cores; the writer is the one in fdatasync below)"
join "$WORK/t0" "$WORK/t1" | awk -v s="$PERF_SECS" -v h="$(getconf CLK_TCK)" '{printf "   tid %s: %.2f\n", $1, ($3 - $2) / h / s}'
echo "-- top 25 by self time (share of the server's samples)"
perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null >"$WORK/self.txt" || true
grep '%' "$WORK/self.txt" | head -25 || true
echo "-- top 45 by inclusive time"
perf report -i "$WORK/perf.data" --children --sort sym --stdio -g none 2>/dev/null >"$WORK/incl.txt" || true
grep '%' "$WORK/incl.txt" | grep -v '0x0000\|0xffff' | head -45 || true

echo "== writer timeline, ${PERF_SECS}s"
perf probe -q -x "$SLUICE" --add 'ia=ingest_apply' --add 'ia_ret=ingest_apply%return'
perf probe -q -x "$LIBSQLITE" --add 'walf=sqlite3WalFrames' --add 'walf_ret=sqlite3WalFrames%return' \
    --add 'ckpt=sqlite3_wal_checkpoint_v2' --add 'ckpt_ret=sqlite3_wal_checkpoint_v2%return'
PROBES=1
load $((PERF_SECS + 4)) >"$WORK/wrk2.json" &
LOADPID=$!
sleep 2
perf record -q -e 'probe_sluice:*' -e 'probe_libsqlite3:*' -p "$PID" -o "$WORK/probe.data" -- sleep "$PERF_SECS" 2>/dev/null
wait "$LOADPID"
echo "load (with uprobes, slower): $(cat "$WORK/wrk2.json")"
perf script -i "$WORK/probe.data" -F time,event 2>/dev/null | /usr/bin/python3 -c '
import re, statistics as st, sys
ev = []
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+):\s+(\S+):", line)
    if m:
        t, e = float(m[1]), m[2].split(":")[1]
        if ev and ev[-1][1] == e and t - ev[-1][0] < 2e-5:
            continue  # the same probe on the PLT stub and on the function
        ev.append((t, e))
span = ev[-1][0] - ev[0][0]
names = {"ia": "ingest_apply (one job: inserts, answer)", "walf": "sqlite3WalFrames (commit: WAL write + fdatasync)",
         "ckpt": "sqlite3_wal_checkpoint_v2 (auto-checkpoint)"}
durs, start = {k: [] for k in names}, {}
for t, e in ev:
    base = e.replace("_ret__return", "")
    if e.endswith("__return"):
        if base in start:
            durs[base].append(t - start.pop(base))
    else:
        start[base] = t
busy = 0
for k, x in durs.items():
    if not x:
        continue
    busy += sum(x)
    x.sort()
    print("   %-50s n=%6d  %5.1f%% of the writer time  mean %7.3f ms  p99 %7.3f ms  max %7.3f ms" % (
        names[k], len(x), 100 * sum(x) / span, st.mean(x) * 1e3, x[int(len(x) * .99)] * 1e3, x[-1] * 1e3))
if durs["walf"]:
    print("   jobs per group commit: %.1f; commits/s: %.0f; writer busy in these three: %.0f%%" % (
        len(durs["ia"]) / len(durs["walf"]), len(durs["walf"]) / span, 100 * busy / span))
'
