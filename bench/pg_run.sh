#!/usr/bin/env bash
# bench/pg_run.sh - sluice on PostgreSQL, with psql's \copy of the same rows
# into a table of the same shape measured in the same run. Builds nothing:
# expects build/sluice (make build/sluice), wrk, curl, psql and pg_virtualenv
# (postgresql-15, postgresql-common) and /usr/bin/python3.
#
#   bash bench/pg_run.sh                   # the full benchmark (~5 minutes)
#   N=1 DURATION=5s bash bench/pg_run.sh   # a quick look
#
# The database: the cluster the PG* variables name, or else (the default) a
# throwaway one that pg_virtualenv makes for the run, with Debian's default
# settings (shared_buffers 128MB, synchronous_commit on) and fsync on (which
# pg_virtualenv turns off unless told), on the same
# disk as everything else. The report shows the settings measured.
#
# Each of the N runs measures, one after the other (drift on the shared
# machine hits every side alike), each preceded by a CHECKPOINT:
#   copy    the peer: `\copy peer FROM valid.csv (FORMAT csv, HEADER)` into a
#           fresh table of the file's 8 columns, typed, with a BIGSERIAL key and
#           the schema's rules as NOT NULL and CHECK constraints. COPY stops at
#           the first bad row, so it loads the file's valid rows only
#           (bench/csv_gen.py --valid-only: the same rows minus the 2% invalid);
#           rows/s = valid rows / time.
#   csv     sluice, a fresh database: the whole file (ROWS rows, INVALID_PCT%
#           invalid) uploaded to dataset `bench` (no key), from the start of
#           the upload until GET /api/v1/batches/{id} says `completed`; every
#           row validated, valid rows stored, invalid ones in the DLQ with
#           their row errors; rows/s = ROWS / time. Checked: the table holds
#           exactly the valid rows.
#   ndjson  sluice, a fresh database: wrk (bench/load.lua) POSTing NDJSON
#           bodies of 100 rows (~200 bytes a row) to dataset `events` (no key)
#           over CONNS connections for DURATION after a WARMUP; rows/s =
#           accepted rows / duration, every one acknowledged after COMMIT.
#           Checked: the table holds every acknowledged row.
#
# Output: a Markdown report on stdout and the section of docs/performance.md
# between <!-- bench:pg:begin --> and <!-- bench:pg:end --> (see bench/lib.sh).
# Environment: N (3), ROWS (1000000), INVALID_PCT (2), SEED (20261123),
# DURATION (10s), WARMUP (3s), THREADS (2), CONNS (64), PORT (18280), POLL
# (0.05), DOC (docs/performance.md; DOC= to write none), KEEP (0), TMPDIR,
# QUIET_PCT (15), QUIET_WAIT (120).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
N=${N:-3}
ROWS=${ROWS:-1000000}
INVALID_PCT=${INVALID_PCT:-2}
SEED=${SEED:-20261123}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
PORT=${PORT:-18280}
POLL=${POLL:-0.05}
DOC=${DOC-$ROOT/docs/performance.md}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
SLUICE=$ROOT/build/sluice
. "$ROOT/bench/lib.sh"

[ -x "$SLUICE" ] || die "no $SLUICE: run 'make build/sluice' first"
for c in wrk curl psql pg_virtualenv; do command -v $c >/dev/null || die "no $c"; done

# A throwaway cluster unless the environment names one (pg_virtualenv sets PGHOST).
if [ -z "${PGHOST:-}" ]; then
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    exec pg_virtualenv -t -c "-p $port" -o fsync=on bash "$0" "$@"
fi

CMDLINE="N=$N ROWS=$ROWS INVALID_PCT=$INVALID_PCT DURATION=$DURATION CONNS=$CONNS bash bench/pg_run.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pgbench.XXXXXX")
RESULTS=$WORK/results.jsonl
cleanup() {
    stop_server
    if [ "$KEEP" = 1 ]; then echo "pg_run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
URL=http://127.0.0.1:$PORT
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# ---- the files ----------------------------------------------------------------
log "generating $ROWS rows ($INVALID_PCT% invalid) and the same file without its invalid rows"
"$PY" "$ROOT/bench/csv_gen.py" "$WORK/all.csv" --rows "$ROWS" --invalid-pct "$INVALID_PCT" --seed "$SEED" 2>/dev/null
"$PY" "$ROOT/bench/csv_gen.py" "$WORK/valid.csv" --rows "$ROWS" --invalid-pct "$INVALID_PCT" --seed "$SEED" \
    --valid-only 2>/dev/null
VALID=$(($(wc -l <"$WORK/valid.csv") - 1))
cat "$WORK/all.csv" "$WORK/valid.csv" >/dev/null # both sides read from the page cache
PG_SETTINGS=$(q -d postgres -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', fsync ' ||
    current_setting('fsync') || ', synchronous_commit ' || current_setting('synchronous_commit') ||
    ', wal_sync_method ' || current_setting('wal_sync_method') || ', shared_buffers ' ||
    current_setting('shared_buffers')")
log "$PG_SETTINGS"

# ---- sluice -------------------------------------------------------------------

start_sluice() { # DB DIR: a fresh database and data directory
    dropdb --if-exists "$1" && createdb "$1"
    mkdir -p "$2"
    cat >"$2/bench.yaml" <<EOF
# bench/pg_run.sh's configuration (generated)
listen: 127.0.0.1:$PORT
storage: postgresql:///$1
log: {requests: false}
auth: {dev_bypass: true}   # loopback only; psql has no HTTP auth either
datasets:
  - name: bench
$("$PY" "$ROOT/bench/csv_gen.py" --schema)
  - name: events
$EVENTS_SCHEMA
EOF
    "$SLUICE" serve --config "$2/bench.yaml" --data-dir "$2" >"$2/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$URL/healthz" || { cat "$2/server.log" >&2; die "sluice did not start"; }
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; } # JSON-ready: 0.33, not bc's .33
result() { echo "$1" >>"$RESULTS"; log "  $1"; }

run_copy() { # RUN
    q -d postgres -c "DROP TABLE IF EXISTS peer" -c "CREATE TABLE peer (_id BIGSERIAL PRIMARY KEY,
        case_number TEXT NOT NULL CHECK (case_number ~ '^CASE-[0-9]{7}\$'),
        amount DOUBLE PRECISION NOT NULL CHECK (amount >= 0), filed_date DATE NOT NULL,
        status TEXT CHECK (status IN ('open', 'closed', 'pending')),
        notes TEXT CHECK (char_length(notes) <= 64), claim_count BIGINT CHECK (claim_count >= 0),
        urgent BOOLEAN, updated_at TIMESTAMPTZ)" -c CHECKPOINT
    wait_quiet
    local t0 t1
    t0=$(now)
    q -d postgres -c "\\copy peer(case_number, amount, filed_date, status, notes, claim_count, urgent, updated_at) FROM '$WORK/valid.csv' WITH (FORMAT csv, HEADER true)"
    t1=$(now)
    local n
    n=$(q -d postgres -c "SELECT count(*) FROM peer")
    [ "$n" = "$VALID" ] || die "copy stored $n rows, expected $VALID"
    result "{\"side\":\"copy\",\"run\":$1,\"rows\":$VALID,\"s\":$(elapsed "$t0" "$t1")}"
}

run_csv() { # RUN
    local db=bench_csv_$1 t0 t1 id st body
    start_sluice "$db" "$WORK/csv-$1"
    q -d "$db" -c CHECKPOINT
    wait_quiet
    t0=$(now)
    # -T streams the file (curl does not load it first); Expect: off, as most clients do
    body=$(curl -sS -X POST -T "$WORK/all.csv" -H 'Content-Type: text/csv' -H 'Expect:' \
        "$URL/api/v1/datasets/bench/batches")
    id=$(sed -n 's/.*"batch_id":"\([^"]*\)".*/\1/p' <<<"$body")
    [ -n "$id" ] || die "the upload failed: $body"
    st=$("$PY" "$ROOT/bench/wait_batch.py" "$URL" "$id" "$POLL") || die "batch $id: $st"
    t1=$(now)
    local n
    n=$(q -d "$db" -c "SELECT count(*) FROM ds_bench")
    [ "$n" = "$VALID" ] || die "sluice stored $n rows of batch $id, expected $VALID"
    stop_server
    result "{\"side\":\"csv\",\"run\":$1,\"rows\":$ROWS,\"stored\":$n,\"s\":$(elapsed "$t0" "$t1")}"
}

run_ndjson() { # RUN
    local db=bench_ev_$1 out=$WORK/wrk-$1.txt
    start_sluice "$db" "$WORK/ev-$1"
    ROWS=100 DATASET=events CASE_BASE=4000000 THREADS=$THREADS wrk -t"$THREADS" -c"$CONNS" \
        -d"$WARMUP" --timeout 10s -s "$ROOT/bench/load.lua" "$URL" >"$WORK/warmup-$1.txt" 2>&1
    local warm
    warm=$(sed -n 's/^WRKJSON //p' "$WORK/warmup-$1.txt" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["accepted"])')
    q -d "$db" -c CHECKPOINT
    wait_quiet
    ROWS=100 DATASET=events CASE_BASE=0 THREADS=$THREADS wrk -t"$THREADS" -c"$CONNS" \
        -d"$DURATION" --timeout 10s --latency -s "$ROOT/bench/load.lua" "$URL" >"$out" 2>&1
    sleep 0.5
    local n w
    n=$(q -d "$db" -c "SELECT count(*) FROM ds_events")
    w=$(sed -n 's/^WRKJSON //p' "$out")
    [ -n "$w" ] || { cat "$out" >&2; die "wrk printed no result"; }
    stop_server
    result "{\"side\":\"ndjson\",\"run\":$1,\"stored\":$n,\"warmup_accepted\":$warm,\"wrk\":$w}"
}

for i in $(seq 1 "$N"); do
    log "run $i of $N"
    run_copy "$i"
    run_csv "$i"
    run_ndjson "$i"
done

# ---- the report -----------------------------------------------------------------
"$PY" - "$RESULTS" "$WORK/report.md" <<EOF
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
def med(side, f):
    return statistics.median(f(r) for r in rs if r["side"] == side)
copy = med("copy", lambda r: r["rows"] / r["s"])
csv = med("csv", lambda r: r["rows"] / r["s"])
ev = med("ndjson", lambda r: r["wrk"]["rows_per_s"])
p99 = med("ndjson", lambda r: r["wrk"]["lat_p99_us"] / 1000)
bad = sum(r["wrk"]["bad_status"] + r["wrk"]["socket_errors"] for r in rs if r["side"] == "ndjson")
lost = [r for r in rs if r["side"] == "ndjson" and r["stored"] < r["wrk"]["accepted"] + r["warmup_accepted"]]
L = []
L.append("Machine: $(machine_line "$WORK").  ")
L.append("Database: $PG_SETTINGS, a pg_virtualenv cluster on the same machine and disk.  ")
L.append("Command: \`$CMDLINE\` ($(date -u '+%Y-%m-%d'), git $(cd "$ROOT" && git rev-parse --short HEAD)); median of $N runs.")
L.append("")
L.append("| what | median | runs | against |")
L.append("|---|---:|---|---|")
runs = lambda side, f: ", ".join("%.0f" % f(r) for r in rs if r["side"] == side)
L.append("| psql \`\\\\copy\` of the $VALID valid rows (peer) | %.0f rows/s | %s | |" % (copy, runs("copy", lambda r: r["rows"] / r["s"])))
L.append("| sluice CSV batch, $ROWS rows ($INVALID_PCT%% invalid) to \`completed\` | %.0f rows/s | %s | **%.2f** of \`\\\\copy\` (goal: 0.50) |" % (csv, runs("csv", lambda r: r["rows"] / r["s"]), csv / copy))
L.append("| sluice NDJSON push, 100 rows a request, $CONNS connections | %.0f rows/s (p99 %.1f ms) | %s | goal: 100,000 rows/s |" % (ev, p99, runs("ndjson", lambda r: r["wrk"]["rows_per_s"])))
L.append("")
L.append("Every run checked the stored rows: the batch's table held exactly the file's valid rows, and the pushed dataset at least every acknowledged row (%s; %d requests answered other than 2xx or lost a connection)." % ("none missing" if not lost else "MISSING ROWS in %d runs" % len(lost), bad))
open(sys.argv[2], "w").write("\n".join(L) + "\n")
EOF
cat "$WORK/report.md"
if [ -n "$DOC" ]; then
    write_doc_section "$DOC" pg "PostgreSQL" "$WORK/report.md"
    log "wrote the pg section of $DOC"
fi
