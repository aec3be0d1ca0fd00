#!/usr/bin/env bash
# bench/mixed.sh - pushes during batches (issue 15's `mixed` scenario): 64
# connections pushing 100-row NDJSON while 1,000,000-row CSV batches are
# uploaded back to back, on SQLite or on PostgreSQL. Builds nothing: expects
# build/sluice (make build/sluice; SLUICE= names another binary, e.g. an older
# tree's, to compare builds), wrk, curl, /usr/bin/python3, and sqlite3 or
# psql and pg_virtualenv (postgresql-15, postgresql-common).
#
#   bash bench/mixed.sh                          # SQLite, N=3 (~6 minutes)
#   STORE=pg bash bench/mixed.sh                 # PostgreSQL (a pg_virtualenv cluster)
#   N=1 DURATION=20s DOC= bash bench/mixed.sh    # a quick look, no doc written
#
# The file: bench/csv_gen.py, seeded, ROWS rows (1,000,000, ~98 MB),
# INVALID_PCT% (2%) invalid; generated once and kept in CACHE (a file per
# rows/percentage/seed), so later runs and the other store reuse it.
# The database: SQLite in the data dir, or (STORE=pg) the cluster the PG*
# variables name, else a throwaway one that pg_virtualenv makes for the run
# with fsync on, as bench/pg_run.sh does.
#
# Each of the N turns measures two scenarios, one after the other, each on a
# fresh data dir (and database) and server, after a WARMUP of pushes and a
# wait for a quiet machine:
#   control  wrk (bench/load.lua) pushing NDJSON bodies of 100 rows (~200
#            bytes a row) to dataset `events` (no key) over CONNS connections
#            for DURATION; no batch. What pushes cost on their own.
#   mixed    the same push load, while a loop uploads the file to dataset
#            `bench` (no key; POST /api/v1/datasets/bench/batches, curl
#            streaming it), waits for `completed` (bench/wait_batch.py) and
#            uploads it again, from just before wrk starts until wrk ends; the
#            batch under way then is waited for (the pushes have stopped: it
#            is reported but is not counted as "under load").
# Reported: the pushes' req/s, rows/s (accepted rows / duration) and
# latency p50, p99 and max (wrk's, every request of the 64 connections), and
# each batch's rows/s: ROWS / (`completed` in its history - the start of its
# upload). With PROBE=1 (default), one more connection sends the same kind of
# push every PROBE_EVERY s (0.02) during the mixed run and times each one, so
# the pushes *while a batch is being stored* (from its `validating` until the
# poll saw `completed`, the commit included) are told from the others: their
# p99 and max are reported apart.
# Checked after each run: the pushed dataset holds at least every
# acknowledged row, and the batch dataset exactly the rows the batches said
# they inserted.
#
# PACE_MS=N paces the pushes: each of the CONNS connections waits N ms after
# an answer before its next request (bench/load.lua), so the load stays below
# what the server can take. Unpaced, the 64 connections keep the server's
# queue full, and a push's latency is then CONNS / req/s (Little's law) in
# the control as much as in the mixed run; paced, it is the time a push
# spends being served, which is what a batch must not stretch.
#
# Output: a Markdown report on stdout and, with DOC set, the section of
# docs/performance.md between <!-- bench:mixed:STORE:begin --> and
# <!-- bench:mixed:STORE:end --> (mixed-paced:STORE with PACE_MS; see
# write_doc_section in bench/lib.sh).
# Raw results: $WORK/results.jsonl (kept with KEEP=1).
#
# Environment: STORE (sqlite | pg), N (3), DURATION (30s: long enough for at
# least one whole batch under load), WARMUP (3s), THREADS (2), CONNS (64),
# ROWS (1000000), INVALID_PCT (2), SEED (20261123), PORT (18380), POLL
# (0.05), PROBE (1), PROBE_EVERY (0.02), PACE_MS (0), CONTROL (1: also the control
# scenario), SLUICE (build/sluice), CACHE ($TMPDIR or /tmp, /sluice-bench-cache),
# DOC (docs/performance.md; DOC= to write none), KEEP (0), TMPDIR, QUIET_PCT
# (15) and QUIET_WAIT (120): before each measured run, wait up to QUIET_WAIT s
# for the rest of the machine to use at most QUIET_PCT% of one core (the CPU
# the rest of the machine used during each run is reported either way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
STORE=${STORE:-sqlite}
N=${N:-3}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
ROWS=${ROWS:-1000000}
INVALID_PCT=${INVALID_PCT:-2}
SEED=${SEED:-20261123}
PORT=${PORT:-18380}
POLL=${POLL:-0.05}
PROBE=${PROBE:-1}
PROBE_EVERY=${PROBE_EVERY:-0.02}
CONTROL=${CONTROL:-1}
PACE_MS=${PACE_MS:-0}
SLUICE=${SLUICE:-$ROOT/build/sluice}
CACHE=${CACHE:-${TMPDIR:-/tmp}/sluice-bench-cache}
DOC=${DOC-$ROOT/docs/performance.md}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
. "$ROOT/bench/lib.sh"

case "$STORE" in
sqlite) need=(wrk curl sqlite3) ;;
pg) need=(wrk curl psql pg_virtualenv createdb dropdb) ;;
*) die "STORE must be sqlite or pg, not '$STORE'" ;;
esac
[ -x "$SLUICE" ] || die "no $SLUICE: run 'make build/sluice' first"
for c in "${need[@]}"; do command -v "$c" >/dev/null || die "no $c: install it (wrk: apt-get install -y wrk, or make bench)"; done
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use (set PORT)"; fi

# PostgreSQL: a throwaway cluster unless the environment names one (pg_virtualenv sets PGHOST).
if [ "$STORE" = pg ] && [ -z "${PGHOST:-}" ]; then
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    exec pg_virtualenv -t -c "-p $port" -o fsync=on bash "$0" "$@"
fi

CMDLINE="STORE=$STORE N=$N DURATION=$DURATION CONNS=$CONNS ROWS=$ROWS INVALID_PCT=$INVALID_PCT"
[ "$PACE_MS" = 0 ] || CMDLINE+=" PACE_MS=$PACE_MS"
[ "$PROBE" = 1 ] || CMDLINE+=" PROBE=0"
[ "$CONTROL" = 1 ] || CMDLINE+=" CONTROL=0"
CMDLINE+=" bash bench/mixed.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-mixed.XXXXXX")
# A private copy: a rebuild of build/sluice during the run does not change what is measured.
VERSION=$("$SLUICE" --version 2>/dev/null | head -1 || echo unknown)
cp "$SLUICE" "$WORK/sluice"
SLUICE=$WORK/sluice
RESULTS=$WORK/results.jsonl
URL=http://127.0.0.1:$PORT
LOOP_PID=""
PROBE_PID=""

stop_bg() { # PID: a background job of this script and its children (curl, the poller)
    [ -n "$1" ] || return 0
    local c
    for c in $(pgrep -P "$1" 2>/dev/null || true); do kill "$c" 2>/dev/null || true; done
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop_bg "$PROBE_PID"
    PROBE_PID=""
    stop_bg "$LOOP_PID"
    LOOP_PID=""
    stop_server
    if [ "$KEEP" = 1 ]; then echo "mixed.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "mixed.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; } # seconds, microsecond resolution (bash 5)
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# ---- the file -------------------------------------------------------------------
mkdir -p "$CACHE"
CSV=$CACHE/mixed-$ROWS-$INVALID_PCT-$SEED.csv
if [ ! -s "$CSV" ]; then
    log "generating $CSV ($ROWS rows, $INVALID_PCT% invalid, seed $SEED); kept for later runs"
    "$PY" "$ROOT/bench/csv_gen.py" "$CSV.part.$$" --rows "$ROWS" --invalid-pct "$INVALID_PCT" \
        --seed "$SEED" 2>"$WORK/gen.txt" || { cat "$WORK/gen.txt" >&2; rm -f "$CSV.part.$$"; die "csv_gen.py failed"; }
    mv "$CSV.part.$$" "$CSV"
else
    log "reusing $CSV"
fi
cat "$CSV" >/dev/null # into the page cache
SCHEMA=$("$PY" "$ROOT/bench/csv_gen.py" --schema)

STORE_LINE="SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1) (the sqlite3 shell; sluice links the system's libsqlite3), in the data dir"
if [ "$STORE" = pg ]; then
    STORE_LINE=$(q -d postgres -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', fsync ' ||
        current_setting('fsync') || ', synchronous_commit ' || current_setting('synchronous_commit') ||
        ', shared_buffers ' || current_setting('shared_buffers')")
    STORE_LINE+=", a pg_virtualenv cluster on the same machine and disk"
fi
log "$STORE_LINE"

# ---- the server -------------------------------------------------------------------
DB=""
start_sluice() { # DIR: a fresh data dir (and database) and a server on it
    local dir=$1 storage=""
    mkdir -p "$dir"
    if [ "$STORE" = pg ]; then
        DB=bench_mixed_$(basename "$dir" | tr -c 'a-z0-9\n' _)
        dropdb --if-exists "$DB" 2>/dev/null && createdb "$DB"
        storage="storage: postgresql:///$DB"
    fi
    cat >"$dir/bench.yaml" <<EOF
# bench/mixed.sh's configuration (generated). Defaults except request logging, off.
listen: 127.0.0.1:$PORT
$storage
log: {requests: false}
auth: {dev_bypass: true}   # loopback only
datasets:
  - name: bench
$SCHEMA
  - name: events
$EVENTS_SCHEMA
EOF
    "$SLUICE" serve --config "$dir/bench.yaml" --listen "127.0.0.1:$PORT" --data-dir "$dir" \
        >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$URL/healthz" || { tail -20 "$dir/server.log" >&2; die "sluice did not start (the end of its log, if any, is above)"; }
}
finish_sluice() { # DIR: stop the server, drop its database and data (disk space)
    stop_server
    if [ "$STORE" = pg ] && [ -n "$DB" ]; then dropdb --if-exists "$DB" || true; fi
    [ "$KEEP" = 1 ] || rm -rf "$1/sluice.db" "$1/sluice.db-wal" "$1/batches"
}
row_count() { # DATASET
    if [ "$STORE" = pg ]; then
        q -d "$DB" -c "SELECT count(*) FROM \"ds_$1\""
    else
        sqlite3 "$DIR/sluice.db" "PRAGMA busy_timeout=10000; SELECT count(*) FROM \"ds_$1\";" | tail -1
    fi
}

# ---- the batch loop and the probe ---------------------------------------------------
batch_loop() { # DIR: upload, wait for `completed`, upload again, until DIR/stop exists
    local dir=$1 k=0 t0 t1 body id st rc
    while [ ! -e "$dir/stop" ]; do
        k=$((k + 1))
        t0=$(now)
        # -T streams the file (curl does not hold it in memory); Expect: off, as most clients do
        body=$(curl -sS -X POST -T "$CSV" -H 'Content-Type: text/csv' -H 'Expect:' \
            "$URL/api/v1/datasets/bench/batches?filename=mixed.csv" 2>&1) || true
        id=$(sed -n 's/.*"batch_id":"\([^"]*\)".*/\1/p' <<<"$body")
        if [ -z "$id" ]; then
            echo "upload $k: $body" >"$dir/loop-error.txt"
            return 1
        fi
        rc=0
        st=$("$PY" "$ROOT/bench/wait_batch.py" "$URL" "$id" "$POLL") || rc=$?
        t1=$(now)
        if [ "$rc" != 0 ]; then
            echo "batch $id (upload $k): $st" >"$dir/loop-error.txt"
            return 1
        fi
        echo "{\"k\":$k,\"t0\":$t0,\"t_seen\":$t1,\"batch\":$st}" >>"$dir/batches.jsonl"
    done
}
probe() { # DIR: a push every PROBE_EVERY s on its own connection, timed, until DIR/stop exists
    "$PY" - "$URL" "$1/probe.txt" "$1/stop" "$PROBE_EVERY" <<'EOF'
import http.client, os, signal, sys, time, urllib.parse
signal.signal(signal.SIGINT, signal.SIG_DFL)  # ^C: no traceback (mixed.sh cleans up)
url, out, stop, every = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
u = urllib.parse.urlsplit(url)
rows = "".join('{"case_number":"CASE-%07d","amount":%d.50,"filed_date":"2024-03-%02d","status":"open",'
               '"notes":"%s"}\n' % (9000000 + i, i, 1 + i % 28, "probe row " * 10) for i in range(100))
body = rows.encode()
hdr = {"Content-Type": "application/x-ndjson"}
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
with open(out, "w") as f:
    while not os.path.exists(stop):
        t0 = time.time()
        try:
            conn.request("POST", "/api/v1/datasets/events/events", body, hdr)
            r = conn.getresponse()
            r.read()
            status = r.status
        except (OSError, http.client.HTTPException):
            conn.close()
            status = 0
        t1 = time.time()
        f.write("%.6f %.6f %d\n" % (t0, t1 - t0, status))
        time.sleep(max(0.0, every - (t1 - t0)))
EOF
}

# ---- one run ---------------------------------------------------------------------
# run SCENARIO TURN: one line in results.jsonl
run() {
    local scen=$1 turn=$2
    DIR=$WORK/$scen-$turn
    local out=$DIR/wrk.txt warm c0 c1 m0 m1 tw0 tw1 stored_ev stored_b
    start_sluice "$DIR"
    ROWS=100 DATASET=events CASE_BASE=4000000 THREADS=$THREADS wrk -t"$THREADS" -c"$CONNS" \
        -d"$WARMUP" --timeout 10s -s "$ROOT/bench/load.lua" "$URL" >"$DIR/warmup.txt" 2>&1
    warm=$(sed -n 's/^WRKJSON //p' "$DIR/warmup.txt" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["accepted"])') ||
        { cat "$DIR/warmup.txt" >&2; die "$scen/$turn: the warm-up's wrk printed no result"; }
    if [ "$STORE" = pg ]; then q -d "$DB" -c CHECKPOINT; fi
    wait_quiet
    : >"$DIR/batches.jsonl"
    : >"$DIR/probe.txt"
    c0=$(cpu_ticks "$SERVER_PID")
    m0=$(machine_ticks)
    if [ "$scen" = mixed ]; then
        batch_loop "$DIR" &
        LOOP_PID=$!
        if [ "$PROBE" = 1 ]; then
            probe "$DIR" &
            PROBE_PID=$!
        fi
    fi
    tw0=$(now)
    local TIMEFORMAT='%U %S'
    { time PACE_MS=$PACE_MS ROWS=100 DATASET=events CASE_BASE=0 THREADS=$THREADS wrk -t"$THREADS" -c"$CONNS" \
        -d"$DURATION" --timeout 10s --latency -s "$ROOT/bench/load.lua" "$URL" \
        >"$out" 2>"$out.err"; } 2>"$out.time"
    tw1=$(now)
    c1=$(cpu_ticks "$SERVER_PID")
    m1=$(machine_ticks)
    touch "$DIR/stop"
    if [ -n "$LOOP_PID" ]; then
        log "  pushes done; waiting for the batch under way"
        wait "$PROBE_PID" 2>/dev/null || true
        PROBE_PID=""
        while kill -0 "$LOOP_PID" 2>/dev/null; do # the poller would retry a dead server for minutes
            kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$DIR/server.log" >&2; die "$scen/$turn: the server died"; }
            sleep 0.2
        done
        if ! wait "$LOOP_PID"; then
            LOOP_PID=""
            tail -20 "$DIR/server.log" >&2
            die "$scen/$turn: the batch loop failed: $(cat "$DIR/loop-error.txt" 2>/dev/null)"
        fi
        LOOP_PID=""
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$DIR/server.log" >&2; die "$scen/$turn: the server died"; }
    sleep 0.5 # answers wrk stopped waiting for are committed by now
    stored_ev=$(row_count events)
    stored_b=$(row_count bench)
    finish_sluice "$DIR"
    [ -n "$(sed -n 's/^WRKJSON //p' "$out")" ] || { cat "$out" "$out.err" >&2; die "$scen/$turn: wrk printed no result"; }
    "$PY" - "$RESULTS" "$DIR" "$scen" "$turn" "$ROWS" "$tw0" "$tw1" "$warm" "$stored_ev" "$stored_b" \
        "$(awk -v t=$((c1 - c0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')" \
        "$(awk -v t=$((m1 - m0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')" <<'EOF'
import datetime, json, sys
out, d, scen, turn, rows, tw0, tw1, warm, sev, sb, cpu, mcpu = sys.argv[1:]
rows, tw0, tw1 = int(rows), float(tw0), float(tw1)
w = next(json.loads(l[8:]) for l in open(d + "/wrk.txt") if l.startswith("WRKJSON "))
wrk_cpu = sum(float(x) for x in open(d + "/wrk.txt.time").read().split())
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
batches = []
for l in open(d + "/batches.jsonl"):
    e = json.loads(l)
    b = e["batch"]
    hist = {}
    for h in b["history"]:
        if h.get("at"):
            hist.setdefault(h["status"], ts(h["at"]))
    done = hist.get("completed", e["t_seen"])
    batches.append({"k": e["k"], "id": b["batch_id"], "t0": e["t0"] - tw0, "completed": done - tw0,
                    "seen": e["t_seen"] - tw0, "storing": hist.get("validating", e["t0"]) - tw0,
                    "s": done - e["t0"], "rows_per_s": rows / (done - e["t0"]),
                    "inserted": b["row_count_inserted"], "invalid": b["row_count_invalid"],
                    "under_load": e["t_seen"] <= tw1})
probe = None
pr = []
for l in open(d + "/probe.txt"):
    t, lat, st = l.split()
    pr.append((float(t) - tw0, float(lat), int(st)))
if pr:
    def inside(t, lat):  # the request was (partly) waiting while a batch was being stored
        return any(t < b["seen"] and t + lat > b["storing"] for b in batches)
    def stats(v):
        v = sorted(v)
        pick = lambda p: v[min(len(v) - 1, int(p / 100 * len(v)))] * 1e3 if v else None
        return {"n": len(v), "p50_ms": pick(50), "p99_ms": pick(99), "max_ms": v[-1] * 1e3 if v else None}
    probe = {"storing": stats([lat for t, lat, st in pr if t < tw1 - tw0 and inside(t, lat)]),
             "other": stats([lat for t, lat, st in pr if t < tw1 - tw0 and not inside(t, lat)]),
             "bad": sum(1 for _, _, st in pr if not 200 <= st < 300)}
r = {"scenario": scen, "turn": int(turn), "wrk": w, "wrk_s": tw1 - tw0, "batches": batches,
     "probe": probe, "warmup_accepted": int(warm), "stored_events": int(sev), "stored_bench": int(sb),
     "server_cpu_s": float(cpu), "machine_cpu_s": float(mcpu), "wrk_cpu_s": wrk_cpu}
open(out, "a").write(json.dumps(r) + "\n")
ld = [b for b in batches if b["under_load"]]
line = "  %-10s pushes %7.0f req/s %8.0f rows/s  p50 %6.1f ms  p99 %7.1f ms  max %7.1f ms  bad %d  errors %d" % (
    "%s/%s" % (scen, turn), w["req_per_s"], w["rows_per_s"], w["lat_p50_us"] / 1e3, w["lat_p99_us"] / 1e3,
    w["lat_max_us"] / 1e3, w["bad_status"], w["socket_errors"] + w["timeouts"])
if batches:
    line += "; batches " + ", ".join("%.0f%s" % (b["rows_per_s"], "" if b["under_load"] else " (after)") for b in batches) + " rows/s"
if probe and probe["storing"]["n"]:
    line += "; probe while storing p99 %.0f ms max %.0f ms (%d)" % (
        probe["storing"]["p99_ms"], probe["storing"]["max_ms"], probe["storing"]["n"])
line += "  server cpu %.1fs  wrk %.1fs  rest %.1fs" % (r["server_cpu_s"], wrk_cpu, r["machine_cpu_s"] - r["server_cpu_s"] - wrk_cpu)
print(line, file=sys.stderr)
if scen == "mixed" and not ld:
    print("  (no batch completed while pushes ran: make DURATION longer)", file=sys.stderr)
if int(sev) < w["accepted"] + int(warm):
    print("  MISSING ROWS: events holds %s, %d acknowledged" % (sev, w["accepted"] + int(warm)), file=sys.stderr)
if int(sb) != sum(b["inserted"] for b in batches):
    print("  ROW COUNT: bench holds %s, the batches inserted %d" % (sb, sum(b["inserted"] for b in batches)), file=sys.stderr)
EOF
}

scens="mixed"
if [ "$CONTROL" = 1 ]; then scens="control and mixed"; fi
log "$STORE: $N turns of $scens, $DURATION each, $CONNS connections; $ROWS-row batches"
for i in $(seq 1 "$N"); do
    log "turn $i of $N"
    if [ "$CONTROL" = 1 ]; then run control "$i"; fi
    run mixed "$i"
done

# ---- the report -----------------------------------------------------------------
"$PY" - "$RESULTS" "$WORK/report.md" "$ROWS" <<EOF
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rows = int(sys.argv[3])
med = lambda v: statistics.median(v) if v else None
def col(scen, f):
    return [f(r) for r in rs if r["scenario"] == scen]
L = []
L.append("Machine: $(machine_line "$WORK").  ")
L.append("Store: $STORE_LINE.  ")
L.append("Command: \`$CMDLINE\` ($(date -u '+%Y-%m-%d %H:%M UTC'), $VERSION, git $(cd "$ROOT" && git rev-parse --short HEAD)); medians of $N turns, each turn the control and then the mixed run.")
L.append("")
L.append("| scenario | push req/s | push rows/s | p50 ms | p99 ms | max ms | batches under load | batch rows/s (median; all) | rest of the machine, CPU s |")
L.append("|---|---:|---:|---:|---:|---:|---:|---|---:|")
for scen in ("control", "mixed"):
    if not col(scen, lambda r: 1):
        continue
    w = lambda k: med(col(scen, lambda r: r["wrk"][k]))
    br = [b["rows_per_s"] for r in rs if r["scenario"] == scen for b in r["batches"] if b["under_load"]]
    nb = col(scen, lambda r: sum(1 for b in r["batches"] if b["under_load"]))
    others = col(scen, lambda r: max(0, r["machine_cpu_s"] - r["server_cpu_s"] - r["wrk_cpu_s"]))
    L.append("| %s | %.0f | %.0f | %.1f | %.1f | %.1f | %s | %s | %s |" % (
        scen if scen == "control" else "mixed: %s-row batches back to back" % format(rows, ","),
        w("req_per_s"), w("rows_per_s"), w("lat_p50_us") / 1e3, w("lat_p99_us") / 1e3, w("lat_max_us") / 1e3,
        " · ".join(str(n) for n in nb) if scen == "mixed" else "–",
        ("**%.0f**; %s" % (med(br), " · ".join("%.0f" % x for x in br))) if br else "–",
        " · ".join("%.1f" % x for x in others)))
ps = [r["probe"] for r in rs if r["scenario"] == "mixed" and r.get("probe")]
if ps:
    L.append("")
    st = [p["storing"] for p in ps if p["storing"]["n"]]
    ot = [p["other"] for p in ps if p["other"]["n"]]
    def f(v, k):
        return " · ".join("%.0f" % x[k] for x in v) if v else "–"
    L.append("The probe (one more connection, a 100-row push every $PROBE_EVERY s, timed by itself) in the mixed runs:"
             " while a batch was being stored (\`validating\` to \`completed\` seen) %s pushes a run, p99 %s ms, max %s ms;"
             " at other times %s pushes a run, p99 %s ms, max %s ms (per run)." % (
             " · ".join(str(x["n"]) for x in st) or "0", f(st, "p99_ms"), f(st, "max_ms"),
             " · ".join(str(x["n"]) for x in ot) or "0", f(ot, "p99_ms"), f(ot, "max_ms")))
L.append("")
mx = [r for r in rs if r["scenario"] == "mixed"]
if mx:
    p99 = med([r["wrk"]["lat_p99_us"] / 1e3 for r in mx])
    mmax = med([r["wrk"]["lat_max_us"] / 1e3 for r in mx])
    L.append("Issue 15's goal for the mixed run: p99 < 50 ms (median %.1f ms: %s), max < 250 ms (median %.1f ms: %s)." % (
        p99, "met" if p99 < 50 else "**not met**", mmax, "met" if mmax < 250 else "**not met**"))
bad = sum(r["wrk"]["bad_status"] + r["wrk"]["socket_errors"] + r["wrk"]["timeouts"] for r in rs)
lost = [r for r in rs if r["stored_events"] < r["wrk"]["accepted"] + r["warmup_accepted"]]
miscount = [r for r in rs if r["stored_bench"] != sum(b["inserted"] for b in r["batches"])]
L.append("Every run checked the stored rows: %s of the acknowledged pushes, %s between the batch dataset and the"
         " batches' inserted counts; %d push answers other than 2xx, socket errors or timeouts." % (
         "none missing" if not lost else "**rows missing in %d runs**" % len(lost),
         "no difference" if not miscount else "**a difference in %d runs**" % len(miscount), bad))
L.append("")
L.append("<details><summary>Every run</summary>")
L.append("")
L.append("| scenario | turn | push rows/s | p50 ms | p99 ms | max ms | batches (rows/s; after: completed once pushes had stopped) | server CPU s | wrk CPU s | rest CPU s |")
L.append("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
for r in rs:
    w = r["wrk"]
    L.append("| %s | %d | %.0f | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %.1f |" % (
        r["scenario"], r["turn"], w["rows_per_s"], w["lat_p50_us"] / 1e3, w["lat_p99_us"] / 1e3,
        w["lat_max_us"] / 1e3,
        ", ".join("%.0f%s" % (b["rows_per_s"], "" if b["under_load"] else " (after)") for b in r["batches"]) or "–",
        r["server_cpu_s"], r["wrk_cpu_s"], max(0, r["machine_cpu_s"] - r["server_cpu_s"] - r["wrk_cpu_s"])))
L.append("")
L.append("*rest* is what the rest of the machine used during the pushes (/proc/stat less the server and wrk):"
         " curl and the poller, the probe, PostgreSQL's processes (STORE=pg), the kernel's writeback, and"
         " other users of this shared machine. A batch's rows/s is %s ÷ (its \`completed\` in its history"
         " − the start of its upload)." % format(rows, ","))
L.append("")
L.append("</details>")
open(sys.argv[2], "w").write("\n".join(L) + "\n")
EOF
cat "$WORK/report.md"
if [ -n "$DOC" ]; then
    if [ "$PACE_MS" = 0 ]; then
        write_doc_section "$DOC" "mixed:$STORE" "Pushes during a batch ($STORE)" "$WORK/report.md"
    else
        write_doc_section "$DOC" "mixed-paced:$STORE" "Paced pushes during a batch ($STORE)" "$WORK/report.md"
    fi
    log "wrote its section of $DOC"
fi
