#!/usr/bin/env bash
# bench/pg_reads.sh - how fast the read paths answer on PostgreSQL with 10
# million rows stored: the lists (batches, DLQ, row errors), the KPI, series
# and error views, /metrics and /health/detailed. Builds nothing: expects
# build/sluice, curl, psql, pg_virtualenv and /usr/bin/python3 (requests).
#
#   bash bench/pg_reads.sh                 # 10 uploads of 1,000,000 rows (~5 minutes)
#   UPLOADS=2 bash bench/pg_reads.sh       # a quick look
#
# 1. sluice on a fresh database (a pg_virtualenv cluster with fsync on, unless
#    the PG* variables name one) stores UPLOADS uploads of bench/csv_gen.py's
#    file (CHUNK rows, 2% invalid: each upload leaves 20,000 DLQ entries and
#    their row errors) through POST /api/v1/datasets/bench/batches, each waited
#    for until `completed`; count(*) of ds_bench must equal the sum of the
#    batches' row_count_inserted. Then VACUUM ANALYZE, as autovacuum would.
# 2. Each view: WARMUP (5) requests, then REQS (100) sequential requests on one
#    keep-alive connection, each timed from send to the last byte; median, p95,
#    p99. Filtered lists filter on what is rare (the rarest error code), where a
#    missing index shows most. TARGET_MS (50) is the goal for a median.
#
# Output: a Markdown report on stdout and the section of docs/performance.md
# between <!-- bench:pgreads:begin --> and <!-- bench:pgreads:end -->.
# Environment: UPLOADS (10), CHUNK (1000000), REQS (100), WARMUP (5), PORT
# (18290), TARGET_MS (50), DOC, KEEP (0), TMPDIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
UPLOADS=${UPLOADS:-10}
CHUNK=${CHUNK:-1000000}
REQS=${REQS:-100}
WARMUP=${WARMUP:-5}
PORT=${PORT:-18290}
TARGET_MS=${TARGET_MS:-50}
DOC=${DOC-$ROOT/docs/performance.md}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_WAIT=${QUIET_WAIT:-60}
SLUICE=$ROOT/build/sluice
. "$ROOT/bench/lib.sh"

[ -x "$SLUICE" ] || die "no $SLUICE: run 'make build/sluice' first"
if [ -z "${PGHOST:-}" ]; then
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    exec pg_virtualenv -t -c "-p $port" -o fsync=on bash "$0" "$@"
fi
CMDLINE="UPLOADS=$UPLOADS CHUNK=$CHUNK REQS=$REQS bash bench/pg_reads.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pgreads.XXXXXX")
cleanup() {
    stop_server
    if [ "$KEEP" = 1 ]; then echo "pg_reads.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
URL=http://127.0.0.1:$PORT
DB=bench_reads
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$PY" "$ROOT/bench/csv_gen.py" "$WORK/all.csv" --rows "$CHUNK" 2>/dev/null
dropdb --if-exists "$DB" && createdb "$DB"
cat >"$WORK/bench.yaml" <<EOF
# bench/pg_reads.sh's configuration (generated)
listen: 127.0.0.1:$PORT
storage: postgresql:///$DB
log: {requests: false}
auth: {dev_bypass: true}
sentinel: {interval_s: 0}   # nothing but the benchmark reads the store
datasets:
  - name: bench
$("$PY" "$ROOT/bench/csv_gen.py" --schema)
EOF
"$SLUICE" serve --config "$WORK/bench.yaml" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_http "$URL/healthz" || { cat "$WORK/server.log" >&2; die "sluice did not start"; }

log "storing $UPLOADS x $CHUNK rows"
T0=$(date +%s)
for i in $(seq 1 "$UPLOADS"); do
    id=$(curl -sS -X POST -H 'Content-Type: text/csv' --data-binary "@$WORK/all.csv" \
        "$URL/api/v1/datasets/bench/batches?filename=bench-$i.csv" |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["batch_id"])')
    "$PY" "$ROOT/bench/wait_batch.py" "$URL" "$id" 0.2 >/dev/null || die "batch $id did not complete"
    log "  upload $i: $id completed"
done
LOAD_S=$(($(date +%s) - T0))
STORED=$(q -c "SELECT count(*) FROM ds_bench")
INSERTED=$(q -c "SELECT sum(row_count_inserted) FROM batches")
[ "$STORED" = "$INSERTED" ] || die "ds_bench holds $STORED rows, the batches say $INSERTED"
q -c "VACUUM ANALYZE"
SIZES=$(q -c "SELECT 'ds_bench ' || pg_size_pretty(pg_total_relation_size('ds_bench')) || ', dlq ' ||
    (SELECT count(*) FROM dlq) || ' entries, batch_errors ' || (SELECT count(*) FROM batch_errors) ||
    ' rows, database ' || pg_size_pretty(pg_database_size(current_database()))")
log "stored $STORED rows in $LOAD_S s; $SIZES"
wait_quiet

"$PY" - "$URL" "$REQS" "$WARMUP" "$TARGET_MS" "$WORK/report.md" "$STORED" "$SIZES" "$LOAD_S" \
    "$(machine_line "$WORK")" "$CMDLINE" "$(cd "$ROOT" && git rev-parse --short HEAD)" \
    "$(q -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', fsync ' || current_setting('fsync') || ', shared_buffers ' || current_setting('shared_buffers')")" <<'EOF'
import datetime, statistics, sys, time
import requests
url, reqs, warm, target, out, stored, sizes, load_s, machine, cmd, git, pg = sys.argv[1:13]
reqs, warm, target = int(reqs), int(warm), float(target)
s = requests.Session()
get = lambda p: s.get(url + p, timeout=30)
last_batch = get("/api/v1/batches?limit=1000").json()["items"][-1]["batch_id"]
dist = get("/api/v1/errors/distribution").json()
code = "TYPE_MISMATCH"
for k in ("codes", "items", "errors"):
    if isinstance(dist.get(k), list) and dist[k]:
        code = dist[k][-1].get("error_code") or code
        break
views = [
    ("KPIs", "/api/v1/stats/kpis"),
    ("KPIs of one dataset", "/api/v1/stats/kpis?dataset=bench"),
    ("hourly series (24 h)", "/api/v1/stats/hourly"),
    ("monthly series", "/api/v1/stats/monthly"),
    ("error distribution", "/api/v1/errors/distribution"),
    ("batches, first page of 50", "/api/v1/batches?limit=50"),
    ("batches of a dataset and state", "/api/v1/batches?dataset=bench&status=completed&limit=50"),
    ("one batch with its history", "/api/v1/batches/" + last_batch),
    ("DLQ, first page of 50", "/api/v1/dlq?limit=50"),
    ("DLQ by its rarest error code", "/api/v1/dlq?error_code=%s&limit=50" % code),
    ("DLQ of a dataset, open", "/api/v1/dlq?dataset=bench&status=open&limit=50"),
    ("a batch's row errors, the whole download", "/api/v1/batches/%s/errors" % last_batch),
    ("metrics", "/metrics"),
    ("health, detailed", "/health/detailed"),
]
rows = []
for name, path in views:
    r = get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    for _ in range(warm):
        get(path)
    t = []
    for _ in range(reqs):
        t0 = time.perf_counter()
        r = get(path)
        r.content
        t.append((time.perf_counter() - t0) * 1000)
    t.sort()
    rows.append((name, path, statistics.median(t), t[int(len(t) * 0.95) - 1], t[int(len(t) * 0.99) - 1]))
    print("  %-36s median %7.2f ms  p95 %7.2f  p99 %7.2f" % ((rows[-1][0],) + rows[-1][2:]), file=sys.stderr)
L = ["Machine: %s.  " % machine,
     "Database: %s, a pg_virtualenv cluster on the same disk.  " % pg,
     "Command: `%s` (%s, git %s): %s rows stored through the server in %s s (%s); "
     "each view %d times in a row on one keep-alive connection after %d warm-up requests."
     % (cmd, datetime.date.today(), git, f"{int(stored):,}", load_s, sizes, reqs, warm),
     "", "| view | request | median | p95 | p99 |", "|---|---|---:|---:|---:|"]
for name, path, med, p95, p99 in rows:
    L.append("| %s | `GET %s` | %s%.2f ms%s | %.2f ms | %.2f ms |" % (
        name, path.replace(last_batch, "{id}"), "" if med <= target else "**",
        med, "" if med <= target else "** (over %g ms)" % target, p95, p99))
open(out, "w").write("\n".join(L) + "\n")
EOF
cat "$WORK/report.md"
if [ -n "$DOC" ]; then
    write_doc_section "$DOC" pgreads "Read paths on PostgreSQL at 10 million rows" "$WORK/report.md"
    log "wrote the pgreads section of $DOC"
fi
