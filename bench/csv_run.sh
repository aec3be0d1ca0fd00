#!/usr/bin/env bash
# bench/csv_run.sh - sluice's CSV batch benchmark, with sqlite3's own .import
# of the same file measured in the same run. Builds nothing: expects
# build/sluice (make build/sluice), curl, sqlite3 and /usr/bin/python3.
#
#   bash bench/csv_run.sh                  # the full benchmark (~3 minutes)
#   N=1 KEYED=0 bash bench/csv_run.sh      # a quick look
#   PERF=1 bash bench/csv_run.sh           # also one profiled run (perf record -g)
#
# The file: bench/csv_gen.py, seeded: ROWS rows (1,000,000), 8 columns,
# ~100 bytes a row (~98 MB), INVALID_PCT% (2%) invalid rows of 13 kinds.
#
# Each of the N runs measures, one after the other (so drift on the shared
# machine hits both sides alike):
#   sluice   a fresh data dir and server (bench config: dataset `bench`, no
#            key); the clock runs from the start of the upload (curl streaming
#            the file, POST /api/v1/datasets/bench/batches) until
#            GET /api/v1/batches/{id} answers `completed` (polled every
#            POLL s); the server's VmRSS is sampled every 0.1 s and VmHWM is
#            read at the end (reset before the upload); rows/s = ROWS / time.
#            The batch's history and the server log split the time: upload
#            (until the batch is recorded `uploaded`, after the file's fsync),
#            queue (-> `validating`), pass (the one streamed pass: the worker
#            reads and validates, the writer inserts; `completed` at its end),
#            commit (until the
#            worker logs `completed`: the transaction's commit), seen (until
#            the poll that sees it).
#   sqlite3  the peer: a fresh database, PRAGMA journal_mode=WAL, CREATE TABLE
#            t with the same 8 typed columns; then, timed, one sqlite3 process
#            running PRAGMA synchronous=FULL and `.import --csv --skip 1 FILE t`
#            (one transaction, no validation); rows/s = ROWS / time.
#   keyed    (KEYED=1) the same two again with a unique key: sluice's dataset
#            `bench_keyed` (key: case_number, on_duplicate: reject) and the
#            peer's table with a UNIQUE index on case_number.
# The file is read once before the runs, so both sides read it from the page
# cache.
#
# Output: a Markdown report on stdout and the section of docs/performance.md
# between <!-- bench:csv:begin --> and <!-- bench:csv:end --> (added at the
# end of the file under "## CSV batches" when missing; the rest of the file is
# kept, and so are hand-written notes inside the section that follow a line
# <!-- bench:csv:notes -->). Raw results: $WORK/results.jsonl (kept with KEEP=1).
#
# Environment: N (3), ROWS (1000000), INVALID_PCT (2), SEED (20261123),
# KEYED (1), PORT (18180), POLL (0.05), PROBE (1: when the batch shows
# `inserting`, send one single-row POST to another dataset, `probe`, and
# report how long its answer took, against the same POST on the idle server),
# PERF (0; 1 adds a profiled run of sluice after the measured ones, reported
# apart and per thread: needs perf), PERF_FREQ (499), PERF_CG (dwarf,16384:
# Debian's libsqlite3 and jansson have no frame pointers), DOC
# (docs/performance.md; DOC= to write none), KEEP (0), TMPDIR, QUIET_PCT (15)
# and QUIET_WAIT (120): before each measured run, wait up to QUIET_WAIT s for
# the rest of the machine to use at most QUIET_PCT% of one core (the CPU the
# rest of the machine used during each run is reported either way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-3}
ROWS=${ROWS:-1000000}
INVALID_PCT=${INVALID_PCT:-2}
SEED=${SEED:-20261123}
KEYED=${KEYED:-1}
PORT=${PORT:-18180}
POLL=${POLL:-0.05}
PERF=${PERF:-0}
PROBE=${PROBE:-1}
PERF_FREQ=${PERF_FREQ:-499}
PERF_CG=${PERF_CG:-dwarf,16384}
DOC=${DOC-$ROOT/docs/performance.md}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
PY=/usr/bin/python3
. "$ROOT/bench/lib.sh"
SLUICE=$ROOT/build/sluice
CMDLINE="N=$N ROWS=$ROWS INVALID_PCT=$INVALID_PCT KEYED=$KEYED"
if [ "$PERF" = 1 ]; then CMDLINE+=" PERF=1"; fi
CMDLINE+=" bash bench/csv_run.sh"

[ -x "$SLUICE" ] || die "no $SLUICE: run 'make build/sluice' first"
command -v sqlite3 >/dev/null || die "no sqlite3: apt-get install -y sqlite3"
command -v curl >/dev/null || die "no curl: apt-get install -y curl"
[ "$PERF" = 1 ] && { command -v perf >/dev/null || die "PERF=1 needs perf (apt-get install linux-perf)"; }
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use (set PORT)"; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-csvbench.XXXXXX")
# A private copy: a rebuild of build/sluice during the run does not change what is measured.
cp "$SLUICE" "$WORK/sluice"
SLUICE=$WORK/sluice
RESULTS=$WORK/results.jsonl
CSV=$WORK/bench.csv
URL=http://127.0.0.1:$PORT
PEER_PID=""

cleanup() {
    stop_sampler
    stop_server
    if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; fi
    if [ "$KEEP" = 1 ]; then echo "csv_run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "csv_run.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; } # seconds, microsecond resolution (bash 5)

# ---- the machine and the file -----------------------------------------------
log "machine facts and the cost of one fdatasync in $WORK"
FSYNC_JSON=$("$PY" "$ROOT/bench/fdatasync_cost.py" "$WORK" 2000)
disk_facts "$WORK"

log "generating $CSV ($ROWS rows, $INVALID_PCT% invalid, seed $SEED)"
GEN_MSG=$("$PY" "$ROOT/bench/csv_gen.py" "$CSV" --rows "$ROWS" --invalid-pct "$INVALID_PCT" --seed "$SEED" 2>&1)
echo "  $GEN_MSG" >&2
CSV_BYTES=$(stat -c %s "$CSV")
CSV_SHA=$(sed -n 's/.*sha256 \([0-9a-f]*\).*/\1/p' <<<"$GEN_MSG")
SQL_COLUMNS=$("$PY" "$ROOT/bench/csv_gen.py" --sql-columns)
SCHEMA=$("$PY" "$ROOT/bench/csv_gen.py" --schema)
cat "$CSV" >/dev/null # into the page cache, for both sides

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
  "sqlite3": "$(sqlite3 --version | cut -d' ' -f1-2)",
  "curl": "$(curl --version | head -1 | cut -d' ' -f1-2)",
  "fdatasync": json.loads('''$FSYNC_JSON'''),
  "command": "$CMDLINE",
  "n": $N, "rows": $ROWS, "invalid_pct": $INVALID_PCT, "seed": $SEED, "poll_s": $POLL,
  "csv_bytes": $CSV_BYTES, "csv_sha256": "$CSV_SHA",
  "gen": """$GEN_MSG""",
}, open(sys.argv[1], "w"), indent=1)
EOF

# ---- helpers ------------------------------------------------------------------
write_config() { # FILE: `bench` (no key, as .import has none) and `bench_keyed`
    cat >"$1" <<EOF
# bench/csv_run.sh's configuration (generated). Defaults except request
# logging, off (the poll would log 20 lines a second).
listen: 127.0.0.1:$PORT
log: {requests: false}
auth: {dev_bypass: true}   # loopback only; .import has no auth either
datasets:
  - name: bench
$SCHEMA
  - name: bench_keyed
    key: case_number
    on_duplicate: reject
$SCHEMA
  - name: probe
    schema: {type: object}
EOF
}
start_sluice() { # DIR
    mkdir -p "$1"
    write_config "$1/bench.yaml"
    "$SLUICE" serve --config "$1/bench.yaml" --listen "127.0.0.1:$PORT" --data-dir "$1" \
        >"$1/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$URL/healthz" || { cat "$1/server.log" >&2; die "sluice did not start"; }
}
sampler() { # OUTFILE PID: VmRSS (kB) every 0.1 s, one "time kB" line each
    local out=$1 pid=$2 k v _
    while :; do
        while read -r k v _; do
            if [ "$k" = "VmRSS:" ]; then echo "$EPOCHREALTIME $v" >>"$out"; break; fi
        done 2>/dev/null <"/proc/$pid/status" || true
        sleep 0.1
    done
}
max_rss() { awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$1" 2>/dev/null || echo 0; }

# run_sluice RUN DATASET [perf]: one upload, one line in results.jsonl
run_sluice() {
    local run=$1 ds=$2 prof=${3:-}
    local dir=$WORK/sluice-$ds-$run
    local t0 t1 t2 c0 c1 m0 m1 ans id st hwm rss stored perf_pid=""
    start_sluice "$dir"
    [ "$run" = warmup ] || [ -n "$prof" ] || wait_quiet
    local idle_probe=""
    if [ "$PROBE" = 1 ]; then # the same one-row POST on the idle server, for comparison
        idle_probe=$(curl -s -o /dev/null -w '%{time_total}' -X POST -H 'Content-Type: application/json' \
            --data '{"probe":0}' "$URL/api/v1/datasets/probe/events")
    fi
    echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true # VmHWM := VmRSS
    : >"$dir/rss.txt"
    sampler "$dir/rss.txt" "$SERVER_PID" &
    SAMPLER_PID=$!
    if [ -n "$prof" ]; then
        perf record -q -F "$PERF_FREQ" --call-graph "$PERF_CG" -p "$SERVER_PID" -o "$WORK/perf.data" 2>"$WORK/perf.err" &
        perf_pid=$!
        sleep 0.5
    fi
    c0=$(cpu_ticks "$SERVER_PID")
    m0=$(machine_ticks)
    t0=$(now)
    # -T streams the file (curl does not hold it in memory); Expect: off, as most clients do
    ans=$(curl -sS -X POST -T "$CSV" -H 'Content-Type: text/csv' -H 'Expect:' \
        "$URL/api/v1/datasets/$ds/batches?filename=bench.csv")
    t1=$(now)
    id=$(sed -n 's/.*"batch_id":"\([^"]*\)".*/\1/p' <<<"$ans")
    [ -n "$id" ] || { cat "$dir/server.log" >&2; die "sluice/$ds/$run: the upload failed: $ans"; }
    local probed=""
    : >"$dir/probe.txt"
    while :; do
        st=$(curl -sS "$URL/api/v1/batches/$id")
        t2=$(now)
        grep -q '"status":"\(completed\|failed\)"' <<<"$st" && break
        if [ "$PROBE" = 1 ] && [ -z "$probed" ] && grep -q '^{[^{]*"status":"\(inserting\|upserting\)"' <<<"$st"; then
            # one single-row POST to another dataset while the batch is being stored
            probed=1
            curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST -H 'Content-Type: application/json' \
                --data '{"probe":1}' "$URL/api/v1/datasets/probe/events" >"$dir/probe.txt" &
            probed=$!
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "sluice/$ds/$run: the server died"; }
        sleep "$POLL"
    done
    c1=$(cpu_ticks "$SERVER_PID")
    m1=$(machine_ticks)
    if [ -n "$probed" ]; then wait "$probed" || true; fi
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    stop_sampler
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")
    rss=$(max_rss "$dir/rss.txt")
    stored=$(sqlite3 "$dir/sluice.db" "PRAGMA busy_timeout=10000; SELECT count(*) FROM \"ds_$ds\";" | tail -1)
    local files
    files=$(find "$dir/batches" -type f 2>/dev/null | wc -l)
    stop_server
    echo "$st" >"$dir/batch.json"
    "$PY" - "$RESULTS" "$dir/batch.json" "$dir/server.log" "$run" "$ds" "$t0" "$t1" "$t2" "$rss" "$hwm" "$stored" \
        "$(awk -v t=$((c1 - c0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')" \
        "$(awk -v t=$((m1 - m0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')" \
        "$(du -sb "$dir" | cut -f1)" "$files" "${prof:-}" "$(cat "$dir/probe.txt")" "$idle_probe" <<'EOF'
import datetime, json, sys
out, bfile, slog, run, ds, t0, t1, t2, rss, hwm, stored, cpu, mcpu, dbytes, files, prof, probe, idle_probe = sys.argv[1:]
b = json.load(open(bfile))
logged = None  # when the worker logged `completed`: after the writer's commit returned
for line in open(slog):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("msg") in ("completed", "failed") and e.get("batch_id") == b["batch_id"]:
        logged = e["time"]
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
hist = {}
for h in b["history"]:
    hist.setdefault(h["status"], ts(h["at"]))
t0, t1, t2 = float(t0), float(t1), float(t2)
r = {"target": "sluice", "dataset": ds, "keyed": ds == "bench_keyed", "run": run,
     "profiled": prof == "perf", "status": b["status"], "rejection_reason": b["rejection_reason"],
     "seconds": t2 - t0, "upload_s": t1 - t0,
     "hist": {k: v - t0 for k, v in hist.items()},
     "total": b["row_count_total"], "inserted": b["row_count_inserted"],
     "invalid": b["row_count_invalid"], "duplicate": b["row_count_duplicate"],
     "stored": int(stored or 0), "rss_kb": int(rss), "hwm_kb": int(hwm or 0),
     "server_cpu_s": float(cpu), "machine_cpu_s": float(mcpu), "data_dir_bytes": int(dbytes),
     "batch_files_left": int(files), "attempts": b["attempts"],
     "logged_done": ts(logged) - t0 if logged else None,
     "probe": {"status": int(probe.split()[0]), "seconds": float(probe.split()[1])} if probe.strip() else None,
     "idle_probe_s": float(idle_probe) if idle_probe else None}
open(out, "a").write(json.dumps(r) + "\n")
h = r["hist"]
split = ""
if "validating" in h and "transforming" in h and "completed" in h:
    up = h.get("uploaded", r["upload_s"])
    done = r["logged_done"] or r["seconds"]
    split = "upload %.2fs, queue %.2fs, pass %.2fs, commit %.2fs, poll %.2fs" % (
        up, h["validating"] - up, h["completed"] - h["validating"], done - h["completed"],
        r["seconds"] - done)
if r["probe"]:
    split += "; a one-row POST meanwhile: %d in %.2fs" % (r["probe"]["status"], r["probe"]["seconds"])
print("  %-22s %-9s %6.2f s %9.0f rows/s  (%s)  peak RSS %.1f MB (VmHWM %.1f MB)  stored %d of %d (invalid %d, dup %d)  server cpu %.1fs  others %.1fs" % (
    "sluice/%s/%s" % (ds, run), r["status"], r["seconds"], r["total"] / r["seconds"] if r["seconds"] else 0,
    split, r["rss_kb"] / 1024, r["hwm_kb"] / 1024, r["stored"], r["total"], r["invalid"],
    r["duplicate"], r["server_cpu_s"], max(0, r["machine_cpu_s"] - r["server_cpu_s"])), file=sys.stderr)
EOF
}

# run_peer RUN KEYED: sqlite3 .import of the same file, one line in results.jsonl
run_peer() {
    local run=$1 keyed=$2
    local dir=$WORK/peer-$keyed-$run
    local db=$dir/peer.db t0 t1 m0 m1 rss stored warnings idx=""
    mkdir -p "$dir"
    [ "$keyed" = 1 ] && idx="CREATE UNIQUE INDEX t_key ON t(case_number);"
    sqlite3 "$db" "PRAGMA journal_mode=WAL; CREATE TABLE t($SQL_COLUMNS); $idx" >/dev/null
    wait_quiet
    : >"$dir/rss.txt"
    m0=$(machine_ticks)
    t0=$(now)
    # synchronous is per connection: set in the importing process itself
    printf 'PRAGMA synchronous=FULL;\n.import --csv --skip 1 %s t\n' "$CSV" |
        sqlite3 -bail "$db" >"$dir/import.out" 2>"$dir/import.err" &
    PEER_PID=$!
    sampler "$dir/rss.txt" "$PEER_PID" &
    SAMPLER_PID=$!
    wait "$PEER_PID" || true
    t1=$(now)
    m1=$(machine_ticks)
    PEER_PID=""
    stop_sampler
    rss=$(max_rss "$dir/rss.txt")
    stored=$(sqlite3 "$db" "SELECT count(*) FROM t;")
    warnings=$(wc -l <"$dir/import.err")
    "$PY" - "$RESULTS" "$run" "$keyed" "$t0" "$t1" "$rss" "$stored" "$warnings" \
        "$(awk -v t=$((m1 - m0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')" "$(du -sb "$dir" | cut -f1)" \
        "$(sqlite3 "$db" 'PRAGMA journal_mode;')" "$(head -1 "$dir/import.err")" "$ROWS" <<'EOF'
import json, sys
out, run, keyed, t0, t1, rss, stored, warnings, mcpu, dbytes, jm, first, rows = sys.argv[1:]
r = {"target": "sqlite3", "keyed": keyed == "1", "run": run, "seconds": float(t1) - float(t0),
     "stored": int(stored), "rss_kb": int(rss), "warnings": int(warnings),
     "machine_cpu_s": float(mcpu), "data_dir_bytes": int(dbytes), "journal_mode": jm,
     "first_warning": first}
open(out, "a").write(json.dumps(r) + "\n")
print("  %-22s           %6.2f s %9.0f rows/s  peak RSS %.1f MB  stored %d  .import warnings %d  machine cpu %.1fs" % (
    "sqlite3/%s/%s" % ("keyed" if r["keyed"] else "nokey", run), r["seconds"],
    int(rows) / r["seconds"], r["rss_kb"] / 1024, r["stored"], r["warnings"], r["machine_cpu_s"]), file=sys.stderr)
EOF
}

# ---- the runs -------------------------------------------------------------------
# Warm-up: the binary and its libraries into the page cache; not measured.
log "warm-up: one small upload (not measured)"
start_sluice "$WORK/warmup"
head -c 1000000 "$CSV" | curl -sS -o /dev/null -X POST --data-binary @- -H 'Content-Type: text/csv' \
    "$URL/api/v1/datasets/bench/batches"
stop_server

for i in $(seq 1 "$N"); do
    log "run $i of $N"
    run_sluice "$i" bench
    run_peer "$i" 0
    if [ "$KEYED" = 1 ]; then
        run_sluice "$i" bench_keyed
        run_peer "$i" 1
    fi
done
if [ "$PERF" = 1 ]; then
    log "profiled run (perf record -g -F $PERF_FREQ; not in the medians)"
    run_sluice perf bench perf
    # per thread (the threads are unnamed: each is labelled by its entry function)
    perf script -i "$WORK/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null | "$PY" -c '
import collections, re, sys
incl, self_, tot = {}, {}, collections.Counter()
ROLES = {"writer_main": "writer", "worker_main": "batch worker", "ckpt_main": "checkpointer",
         "conn_feed": "I/O thread", "uv_run": "I/O thread", "upload_work": "libuv pool"}
def flush(tid, stack):
    if tid is None or not stack:
        return
    tot[tid] += 1
    i, s = incl.setdefault(tid, collections.Counter()), self_.setdefault(tid, collections.Counter())
    s[stack[0]] += 1
    for f in set(stack):
        i[f] += 1
tid, stack = None, []
for line in sys.stdin:
    if not line.strip():
        flush(tid, stack); tid, stack = None, []
    elif not line[0].isspace():
        flush(tid, stack); tid, stack = line.split()[1], []
    else:
        parts = line.split(None, 1)
        f, _, dso = (parts[1] if len(parts) > 1 else "? ()").rpartition(" (")
        f = re.sub(r"\+0x[0-9a-f]+$", "", f.strip())
        if f == "[unknown]":  # no symbols: Debian strips libsqlite3 internals, jansson, libcrypto
            f = "[%s]" % dso.strip(" )\n").split("/")[-1].split(".so")[0]
        stack.append(f)
flush(tid, stack)
n_all = sum(tot.values())
for t, n in tot.most_common():
    if n < 0.02 * n_all:
        continue
    role = next((r for f, r in ROLES.items() if incl[t][f]), "?")
    print("== thread %s (%s): %d samples, %.0f%% of the server" % (t, role, n, 100 * n / n_all))
    print("   inclusive:", "; ".join("%s %.0f%%" % (f, 100 * c / n) for f, c in incl[t].most_common(40)
                                      if f not in ("start_thread", "clone3", "clone") and not f.startswith("[")))
    print("   self:", "; ".join("%s %.1f%%" % (f, 100 * c / n) for f, c in self_[t].most_common(16)))
' >"$WORK/perf-threads.txt" || true
fi

# ---- report --------------------------------------------------------------------
"$PY" - "$WORK/machine.json" "$RESULTS" "${DOC:-}" "$WORK" <<'EOF'
import json, os, statistics, sys

BEGIN, END = "<!-- bench:csv:begin -->", "<!-- bench:csv:end -->"
NOTES = "<!-- bench:csv:notes -->"
RATIO_MIN, RSS_MAX_MB = 0.60, 64
machine = json.load(open(sys.argv[1]))
runs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
doc, work = sys.argv[3] or None, sys.argv[4]
rows = machine["rows"]
measured = [r for r in runs if not r.get("profiled")]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def sel(target, keyed):
    return [r for r in measured if r["target"] == target and r["keyed"] == keyed]


def phases(r):
    h, up = r["hist"], r["upload_s"]
    if not all(k in h for k in ("validating", "transforming", "completed")):
        return None
    up = h.get("uploaded", up)  # the server's record of the upload, after the file's fsync
    return {"upload": up, "queue": h["validating"] - up,
            "pass": h["completed"] - h["validating"],
            "commit": (r.get("logged_done") or r["seconds"]) - h["completed"],
            "seen": r["seconds"] - (r.get("logged_done") or r["seconds"])}


out = []
w = out.append
fs = machine["fdatasync"]
w(f"Measured {machine['date']} by `{machine['command']}`; binary: {machine['sluice_version']}"
  f" (work tree at {machine['git']}).")
w("")
w("| machine | |")
w("|---|---|")
w(f"| CPU | {machine['nproc']} × {machine['cpu']} ({machine['virt']}), {machine['mem']} RAM |")
w(f"| OS, kernel | {machine['os']}, {machine['kernel']} |")
w(f"| disk of the data dir | {machine['disk']} (as the kernel reports it) |")
w(f"| one write+fdatasync (4 KiB, n={fs['n']}) | median {fs['median_us']:.0f} µs, p99 {fs['p99_us']:.0f} µs |")
w(f"| file | bench/csv_gen.py --seed {machine['seed']}: {rows:,} rows + header, 8 columns,"
  f" {machine['csv_bytes']:,} bytes ({machine['csv_bytes'] / rows:.1f} a row), {machine['invalid_pct']}%"
  f" invalid rows of 13 kinds, sha256 `{machine['csv_sha256'][:16]}…` |")
w(f"| peer | {machine['sqlite3']} CLI: `PRAGMA journal_mode=WAL` and `synchronous=FULL`,"
  f" `.import --csv --skip 1` into a table of the same 8 typed columns (one transaction, no validation) |")
w(f"| client | {machine['curl']} streaming the file (`-T`), then GET the batch every {machine['poll_s']} s |")
w("")
w("### Against the target (medians)")
w("")
w("| dataset | sluice rows/s | sqlite3 .import rows/s | ratio (target ≥ 0.60) | met? | peak RSS (target < 64 MB) | met? |")
w("|---|---|---|---|---|---|---|")
verdict = {}
for keyed in (False, True):
    s, p = sel("sluice", keyed), sel("sqlite3", keyed)
    if not s:
        continue
    srate = med([rows / r["seconds"] for r in s])
    prate = med([rows / r["seconds"] for r in p]) if p else float("nan")
    ratio = srate / prate if p else float("nan")
    peak = max(max(r["rss_kb"], r["hwm_kb"]) for r in s) / 1024
    ok_r, ok_m = ratio >= RATIO_MIN, peak < RSS_MAX_MB
    verdict[keyed] = (srate, prate, ratio, peak)
    name = "`bench_keyed` (unique key case_number; peer: UNIQUE index)" if keyed else "`bench` (no key)"
    w(f"| {name} | {srate:,.0f} | {prate:,.0f} | {ratio:.2f} | {'yes' if ok_r else 'no'} |"
      f" {peak:.1f} MB (highest run, VmHWM) | {'yes' if ok_m else 'no'} |")
w("")
w("### Where sluice's time goes (medians, seconds from the start of the upload)")
w("")
w("| dataset | total | upload (to `uploaded`) | queue (to `validating`) |"
  " pass (`validating` → `completed`: read, validate, insert) | commit (→ the worker logs"
  " `completed`) | seen (→ the poll that sees it) |")
w("|---|---|---|---|---|---|---|")
for keyed in (False, True):
    ph = [x for x in (phases(r) for r in sel("sluice", keyed)) if x]
    if not ph:
        continue
    tot = med([r["seconds"] for r in sel("sluice", keyed)])
    cells = []
    for k in ("upload", "queue", "pass", "commit", "seen"):
        v = med([x[k] for x in ph])
        cells.append(f"{v:.2f} ({100 * v / tot:.0f}%)")
    w(f"| {'bench_keyed' if keyed else 'bench'} | {tot:.2f} | " + " | ".join(cells) + " |")
w("")
w("Phases from the batch's history (the server's clock, ms) and the client's clock (the same machine):"
  " *upload* from the first byte sent to the `uploaded` record (the file streamed to disk, hashed and"
  " fsynced); *pass* is the one streamed pass over the file (the worker reads, validates and converts"
  " each record while the writer inserts the rows, row errors and DLQ entries it hands over;"
  " `validating`, `transforming` and `inserting` are recorded together at its start, `completed`"
  " at its end, inside the transaction);"
  " *commit* runs until the worker logs `completed` (the transaction's last WAL pages and its fsync);"
  " *seen* is the rest, until the next poll (at most one poll interval). Rows/s is always"
  f" {rows:,} ÷ the wall time of the whole thing (sluice: upload to `completed` seen;"
  " sqlite3: the `sqlite3` process that imports, from start to exit).")
pr = [r["probe"]["seconds"] for r in measured if r["target"] == "sluice" and r.get("probe")]
idle = [r["idle_probe_s"] for r in measured if r["target"] == "sluice" and r.get("idle_probe_s") is not None]
if pr:
    w("")
    w(f"While a batch is stored, the rest of the server's writes wait: a one-row POST to another dataset"
      f" (`probe`), sent by the client as soon as the batch showed `inserting`, was answered after"
      f" {med(pr):.2f} s (median of {len(pr)}; {min(pr):.2f}–{max(pr):.2f} s); the same POST took"
      f" {1e3 * med(idle):.0f} ms (median) on the idle server just before the upload.")
w("")
w("<details><summary>Every run</summary>")
w("")
w("| target | dataset | run | seconds | rows/s | upload | pass | commit | peak RSS MB (sampled / VmHWM) | stored | invalid | server CPU s | rest of the machine, CPU s | data dir MB | one-row POST while storing |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    if r["target"] == "sluice":
        ph = phases(r) or {}
        g = lambda k: f"{ph[k]:.2f}" if k in ph else "–"
        w(f"| sluice{' (perf)' if r.get('profiled') else ''} | {r['dataset']} | {r['run']} | {r['seconds']:.2f} |"
          f" {rows / r['seconds']:,.0f} | {g('upload')} | {g('pass')} | {g('commit')} |"
          f" {r['rss_kb'] / 1024:.1f} / {r['hwm_kb'] / 1024:.1f} | {r['stored']:,} | {r['invalid']:,} |"
          f" {r['server_cpu_s']:.1f} | {max(0, r['machine_cpu_s'] - r['server_cpu_s']):.1f} |"
          f" {r['data_dir_bytes'] / 2**20:.0f} |"
          + (f" {r['probe']['status']} after {r['probe']['seconds']:.2f} s |" if r.get("probe") else " – |"))
    else:
        w(f"| sqlite3 .import | {'t + UNIQUE(case_number)' if r['keyed'] else 't'} | {r['run']} | {r['seconds']:.2f} |"
          f" {rows / r['seconds']:,.0f} | – | – | – | – | {r['rss_kb'] / 1024:.1f} / – | {r['stored']:,} |"
          f" – ({r['warnings']:,} warnings) | – | {r['machine_cpu_s']:.1f} (all, sqlite3 included) |"
          f" {r['data_dir_bytes'] / 2**20:.0f} | – |")
w("")
w("*server CPU* is sluice's user+system time from the start of the upload to `completed` seen;"
  " *rest of the machine* is what everything else used meanwhile (/proc/stat less the server): curl"
  " and its polls, the kernel's writeback of the files, and other users' work on this shared machine. *stored* is count(*) of the table afterwards; sluice's data dir holds the"
  " retained CSV file as well. .import's *warnings* are its lines on stderr (rows with too many or too"
  " few fields: it truncates or pads them and stores every row).")
w("")
w("</details>")
text = "\n".join(out) + "\n"
print(text)
for f in ("perf-threads.txt",):
    p = os.path.join(work, f)
    if os.path.exists(p) and os.path.getsize(p):
        print(f"-- {f} (the profiled run; not written to the doc)")
        print(open(p).read())

if doc:
    try:
        cur = open(doc).read()
    except FileNotFoundError:
        cur = "# Performance\n"
    # Hand-written notes inside the block, from the NOTES line to the end marker, are kept.
    notes = ""
    if BEGIN in cur and END in cur:
        old = cur[cur.index(BEGIN):cur.index(END)]
        if NOTES in old:
            notes = old[old.index(NOTES):]
    block = f"{BEGIN}\n{text}{notes}{END}"
    if BEGIN in cur and END in cur:
        new = cur[:cur.index(BEGIN)] + block + cur[cur.index(END) + len(END):]
    else:
        new = cur.rstrip("\n") + "\n\n## CSV batches\n\n" + block + "\n"
    open(doc, "w").write(new)
    print(f"csv_run.sh: wrote {doc}", file=sys.stderr)
EOF
