#!/usr/bin/env bash
# bench/stats_run.sh - latency of the KPI, series and error views
# (GET /api/v1/stats/kpis, /stats/hourly, /stats/monthly, /errors/distribution)
# with 10 million rows stored and a year of rollups. Builds nothing: expects
# build/sluice (make build/sluice), curl, sqlite3 and /usr/bin/python3 (with
# python3-requests).
#
#   bash bench/stats_run.sh                # the full benchmark (~3 minutes)
#   ROWS=1000000 bash bench/stats_run.sh   # a quick look (one upload)
#
# 1. Real rows: sluice on a fresh data dir (dataset `bench`, bench/csv_run.sh's
#    schema, no key; datasets hist1..hist9, schema {type: object}, for the
#    history below; request logging off, auth dev_bypass, the server's
#    sentinel off). bench/csv_gen.py writes ONE file of CHUNK rows (1,000,000,
#    INVALID_PCT% = 2% invalid) and curl uploads it ROWS / CHUNK times (10) to
#    POST /api/v1/datasets/bench/batches?error_threshold_percent=50, each
#    upload waited for until GET /api/v1/batches/{id} answers `completed`. So
#    the server stores the rows, the DLQ entries and the rollups itself. At
#    the end count(*) of ds_bench (sqlite3) must equal the sum of the batches'
#    row_count_inserted.
# 2. Synthetic history (sqlite3, straight into the database, the server
#    stopped): for `bench` and hist1..hist9, one rollup_hour row per hour of
#    the last DAYS (365) days (8,760 hours) with a daily curve of rows, 0.1-3%
#    rejected, 1-6 batches; rollup_errors rows for 8 error codes per dataset
#    per hour (with a sample message, as sluice keeps one); rollup_minute rows
#    for every minute of the last 2 days; dataset_activity for the hist
#    datasets. Counts are added to the real ones where an hour/minute has both.
#    Only the rollups are synthetic: no rows, batches or DLQ entries are added
#    for the history. The server is then started again on the same data dir.
# 3. Each view (and the same with ?dataset=bench): WARMUP (5) requests, then
#    REQS (200) sequential requests on one keep-alive connection (Python
#    requests.Session, as a dashboard's browser or Grafana keeps its
#    connection), each timed from send to the last byte of the body; median,
#    p95, p99, max. For comparison also CURL_REQS (20) curl runs (a new
#    connection each, curl's time_total).
#
# Output: a Markdown report on stdout and the section of docs/performance.md
# between <!-- bench:stats:begin --> and <!-- bench:stats:end --> (added at the
# end of the file under "## KPI and error views at 10 million rows" when
# missing; the rest of the file is kept byte for byte, and so are hand-written
# notes inside the section that follow a line <!-- bench:stats:notes -->).
#
# Environment: ROWS (10000000), CHUNK (1000000), INVALID_PCT (2), SEED
# (20261123), DAYS (365), HIST (9: datasets hist1..hist9), REQS (200), WARMUP
# (5), CURL_REQS (20), TARGET_MS (50), PORT (a free one), POLL (0.2), DOC
# (docs/performance.md; DOC= to write none), KEEP (0), TMPDIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${ROWS:-10000000}
CHUNK=${CHUNK:-1000000}
INVALID_PCT=${INVALID_PCT:-2}
SEED=${SEED:-20261123}
DAYS=${DAYS:-365}
HIST=${HIST:-9}
REQS=${REQS:-200}
WARMUP=${WARMUP:-5}
CURL_REQS=${CURL_REQS:-20}
TARGET_MS=${TARGET_MS:-50}
POLL=${POLL:-0.2}
DOC=${DOC-$ROOT/docs/performance.md}
KEEP=${KEEP:-0}
PY=/usr/bin/python3
. "$ROOT/bench/lib.sh"
SLUICE=$ROOT/build/sluice
[ "$CHUNK" -le "$ROWS" ] || CHUNK=$ROWS
UPLOADS=$(((ROWS + CHUNK - 1) / CHUNK))
CMDLINE="ROWS=$ROWS CHUNK=$CHUNK INVALID_PCT=$INVALID_PCT DAYS=$DAYS HIST=$HIST REQS=$REQS bash bench/stats_run.sh"

[ -x "$SLUICE" ] || die "no $SLUICE: run 'make build/sluice' first"
command -v sqlite3 >/dev/null || die "no sqlite3: apt-get install -y sqlite3"
command -v curl >/dev/null || die "no curl: apt-get install -y curl"
"$PY" -c 'import requests' 2>/dev/null || die "no python3-requests: apt-get install -y python3-requests"
if [ -z "${PORT:-}" ]; then # a free port (never the other benchmarks' fixed ones)
    PORT=$("$PY" -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p not in (18080, 18090, 18180):
        print(p); break')
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use (set PORT)"; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-statsbench.XXXXXX")
cp "$SLUICE" "$WORK/sluice" # a private copy: a rebuild during the run changes nothing
SLUICE=$WORK/sluice
CSV=$WORK/bench.csv
DIR=$WORK/data
DB=$DIR/sluice.db
URL=http://127.0.0.1:$PORT

cleanup() {
    stop_server
    if [ "$KEEP" = 1 ]; then echo "stats_run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "stats_run.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

T_START=$EPOCHREALTIME

# ---- the machine and the file ---------------------------------------------------
disk_facts "$WORK"

log "generating $CSV ($CHUNK rows, $INVALID_PCT% invalid, seed $SEED)"
GEN_MSG=$("$PY" "$ROOT/bench/csv_gen.py" "$CSV" --rows "$CHUNK" --invalid-pct "$INVALID_PCT" --seed "$SEED" 2>&1)
echo "  $GEN_MSG" >&2
CSV_BYTES=$(stat -c %s "$CSV")
SCHEMA=$("$PY" "$ROOT/bench/csv_gen.py" --schema)

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
  "requests": "$("$PY" -c 'import requests, sys; print("Python %d.%d.%d, requests %s" % (sys.version_info[:3] + (requests.__version__,)))')",
  "command": "$CMDLINE",
  "rows": $ROWS, "chunk": $CHUNK, "uploads": $UPLOADS, "invalid_pct": $INVALID_PCT, "seed": $SEED,
  "days": $DAYS, "hist": $HIST, "reqs": $REQS, "warmup": $WARMUP, "curl_reqs": $CURL_REQS,
  "target_ms": $TARGET_MS, "csv_bytes": $CSV_BYTES,
}, open(sys.argv[1], "w"), indent=1)
EOF

# ---- the server -------------------------------------------------------------------
write_config() { # FILE
    {
        cat <<EOF
# bench/stats_run.sh's configuration (generated).
listen: 127.0.0.1:$PORT
log: {requests: false}
auth: {dev_bypass: true}   # loopback only
sentinel: {interval_s: 0}  # nothing but the benchmark's requests reads the store
datasets:
  - name: bench
$SCHEMA
EOF
        for i in $(seq 1 "$HIST"); do
            printf '  - name: hist%d\n    schema: {type: object}\n' "$i"
        done
    } >"$1"
}
start_sluice() {
    mkdir -p "$DIR"
    write_config "$DIR/bench.yaml"
    "$SLUICE" serve --config "$DIR/bench.yaml" --listen "127.0.0.1:$PORT" --data-dir "$DIR" \
        >>"$DIR/server.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$URL/healthz" || { tail -50 "$DIR/server.log" >&2; die "sluice did not start"; }
}

# ---- 1. real rows ---------------------------------------------------------------------
log "sluice on $DIR, port $PORT: $UPLOADS upload(s) of $CHUNK rows"
start_sluice
: >"$WORK/batches.jsonl"
T_LOAD0=$EPOCHREALTIME
for i in $(seq 1 "$UPLOADS"); do
    t0=$EPOCHREALTIME
    ans=$(curl -sS -X POST -T "$CSV" -H 'Content-Type: text/csv' -H 'Expect:' \
        "$URL/api/v1/datasets/bench/batches?filename=bench-$i.csv&error_threshold_percent=50")
    id=$(sed -n 's/.*"batch_id":"\([^"]*\)".*/\1/p' <<<"$ans")
    [ -n "$id" ] || { tail -50 "$DIR/server.log" >&2; die "upload $i failed: $ans"; }
    while :; do
        st=$(curl -sS "$URL/api/v1/batches/$id")
        grep -q '"status":"\(completed\|failed\)"' <<<"$st" && break
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -50 "$DIR/server.log" >&2; die "the server died"; }
        sleep "$POLL"
    done
    grep -q '"status":"completed"' <<<"$st" || die "batch $id: $st"
    echo "$st" >>"$WORK/batches.jsonl"
    log "  upload $i/$UPLOADS: $id completed in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s"
done
LOAD_S=$(awk -v a="$T_LOAD0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
stop_server
ACCEPTED=$("$PY" -c 'import json, sys; print(sum(json.loads(l)["row_count_inserted"] for l in open(sys.argv[1])))' "$WORK/batches.jsonl")
STORED=$(sqlite3 "$DB" "PRAGMA busy_timeout=10000; SELECT count(*) FROM ds_bench;" | tail -1)
[ "$STORED" = "$ACCEPTED" ] || die "count(*) of ds_bench is $STORED, the batches accepted $ACCEPTED"
log "  stored $STORED rows (= the batches' row_count_inserted) in $LOAD_S s"

# ---- 2. synthetic history ----------------------------------------------------------------
log "seeding $DAYS days of synthetic rollups for bench and hist1..hist$HIST (sqlite3, server stopped)"
DS_VALUES="(0, 'bench', 1000)"
for i in $(seq 1 "$HIST"); do DS_VALUES+=", ($i, 'hist$i', $((200 + 250 * i)))"; done
T_SEED0=$EPOCHREALTIME
sqlite3 "$DB" >/dev/null <<EOF
PRAGMA busy_timeout = 10000;
BEGIN;
CREATE TEMP TABLE p AS SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000 AS now_ms,
    CAST(strftime('%s', 'now') AS INTEGER) / 3600 AS now_h,
    CAST(strftime('%s', 'now') AS INTEGER) / 60 AS now_m;
-- k: a salt per dataset; base: rows in the busiest hour of the day
CREATE TEMP TABLE ds (k INTEGER PRIMARY KEY, name TEXT NOT NULL, base INTEGER NOT NULL);
INSERT INTO ds VALUES $DS_VALUES;
-- w: share of the rejected rows (%), with a sample message as sluice keeps one
CREATE TEMP TABLE codes (c INTEGER PRIMARY KEY, code TEXT NOT NULL, w INTEGER NOT NULL, msg TEXT NOT NULL);
INSERT INTO codes VALUES
 (1, 'MISSING_REQUIRED_FIELD', 25, 'row 1042: required field ''amount'' is missing'),
 (2, 'INVALID_TYPE', 20, 'row 87: /claim_count: expected integer, got string'),
 (3, 'INVALID_DATE_FORMAT', 15, 'row 311: /filed_date: ''2026-02-30'' is not a date'),
 (4, 'PATTERN_MISMATCH', 12, 'row 9: /case_number: ''case-0012345'' does not match ^CASE-[0-9]{7}\$'),
 (5, 'NOT_IN_ENUM', 10, 'row 5120: /status: ''archived'' is not one of open, closed, pending'),
 (6, 'OUT_OF_RANGE', 8, 'row 77: /amount: -12.50 is below the minimum 0'),
 (7, 'TOO_LONG', 6, 'row 2048: /notes: 65 characters, at most 64'),
 (8, 'COLUMN_COUNT_MISMATCH', 4, 'row 640: 9 fields, the header has 8');
CREATE TEMP TABLE hrs AS WITH RECURSIVE h(x) AS (
    SELECT (SELECT now_h FROM p) - ($DAYS * 24 - 1) UNION ALL SELECT x + 1 FROM h WHERE x < (SELECT now_h FROM p))
  SELECT x AS hour FROM h;
-- a deterministic pseudo-random number per (hour, dataset, salt): r(s) below
CREATE TEMP TABLE syn AS SELECT dataset, hour, received, rejected, duplicate,
    received - rejected - duplicate AS accepted, batches, batches_failed FROM (
  SELECT name AS dataset, hour, rec AS received,
         rec * (1 + (hour * 2654435761 + k * 40503 + 1) % 1000003 % 30) / 1000 AS rejected,
         rec * ((hour * 2654435761 + k * 40503 + 2) % 1000003 % 5) / 1000 AS duplicate,
         1 + (hour * 2654435761 + k * 40503 + 3) % 1000003 % 6 AS batches,
         (hour * 2654435761 + k * 40503 + 4) % 1000003 % 97 = 0 AS batches_failed
  FROM (SELECT ds.name, ds.k, hrs.hour,
               base * (40 + (hour % 24) * (24 - hour % 24)) / 184
                 + (hour * 2654435761 + k * 40503) % 1000003 % (base / 5 + 1) AS rec
        FROM ds, hrs));
INSERT INTO rollup_hour(dataset, hour, received, accepted, rejected, duplicate, batches, batches_failed)
  SELECT dataset, hour, received, accepted, rejected, duplicate, batches, batches_failed FROM syn WHERE true
  ON CONFLICT(dataset, hour) DO UPDATE SET received = received + excluded.received,
    accepted = accepted + excluded.accepted, rejected = rejected + excluded.rejected,
    duplicate = duplicate + excluded.duplicate, batches = batches + excluded.batches,
    batches_failed = batches_failed + excluded.batches_failed;
INSERT INTO rollup_errors(hour, dataset, code, occurrences, batches, sample, last_seen_ms)
  SELECT s.hour, s.dataset, c.code,
         1 + s.rejected * c.w / 100 + (s.hour * 2654435761 + c.c * 7919) % 1000003 % 3,
         1 + (s.hour * 2654435761 + c.c * 7919 + 5) % 1000003 % s.batches, c.msg,
         min((SELECT now_ms FROM p), s.hour * 3600000 + (s.hour * 2654435761 + c.c * 7919) % 3600000)
  FROM syn s, codes c WHERE true
  ON CONFLICT(hour, dataset, code) DO UPDATE SET occurrences = occurrences + excluded.occurrences,
    batches = batches + excluded.batches, sample = coalesce(sample, excluded.sample),
    last_seen_ms = max(last_seen_ms, excluded.last_seen_ms);
INSERT INTO rollup_minute(dataset, minute, received, accepted, rejected, duplicate)
  SELECT s.dataset, m.minute, s.received / 60, s.accepted / 60, s.rejected / 60, s.duplicate / 60
  FROM (WITH RECURSIVE mm(x) AS (SELECT (SELECT now_m FROM p) - 2879 UNION ALL
          SELECT x + 1 FROM mm WHERE x < (SELECT now_m FROM p)) SELECT x AS minute FROM mm) m
  JOIN syn s ON s.hour = m.minute / 60 WHERE true
  ON CONFLICT(dataset, minute) DO UPDATE SET received = received + excluded.received,
    accepted = accepted + excluded.accepted, rejected = rejected + excluded.rejected,
    duplicate = duplicate + excluded.duplicate;
INSERT INTO dataset_activity(dataset, last_received_ms, last_error_ms)
  SELECT name, (SELECT now_ms FROM p) - k * 7000, (SELECT now_ms FROM p) - k * 60000 FROM ds WHERE k > 0
  ON CONFLICT(dataset) DO NOTHING;
-- the day buckets (monthly series, all-time totals) follow the hours, as the server keeps them
DELETE FROM rollup_day;
INSERT INTO rollup_day SELECT dataset, hour / 24, sum(received), sum(accepted), sum(rejected),
  sum(duplicate), sum(batches), sum(batches_failed) FROM rollup_hour GROUP BY dataset, hour / 24;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
SEED_S=$(awk -v a="$T_SEED0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
sqlite3 -cmd ".timeout 10000" -json "$DB" "
SELECT (SELECT count(*) FROM ds_bench) ds_bench, (SELECT count(*) FROM dlq) dlq,
 (SELECT count(*) FROM batches) batches, (SELECT count(*) FROM rollup_hour) rollup_hour, (SELECT count(*) FROM rollup_day) rollup_day,
 (SELECT count(*) FROM rollup_minute) rollup_minute, (SELECT count(*) FROM rollup_errors) rollup_errors,
 (SELECT count(*) FROM dataset_activity) dataset_activity,
 (SELECT count(DISTINCT dataset) FROM rollup_hour) datasets,
 (SELECT sum(received) FROM rollup_hour) rows_received_all_time,
 (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()) db_bytes;" \
    | "$PY" -c 'import json, sys; json.dump(json.load(sys.stdin)[0], open(sys.argv[1], "w"))' "$WORK/tables.json"
log "  seeded in $SEED_S s: $(cat "$WORK/tables.json")"

# ---- 3. the views -------------------------------------------------------------------------
log "restarting sluice on the same data dir; measuring"
start_sluice
M0=$(machine_ticks)
C0=$(cpu_ticks "$SERVER_PID")
T_M0=$EPOCHREALTIME
"$PY" - "$URL" "$WORK/latency.json" "$REQS" "$WARMUP" "$CURL_REQS" <<'EOF'
import json, statistics, subprocess, sys, time
import requests

url, out, reqs, warmup, curl_reqs = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
PATHS = ["/api/v1/stats/kpis", "/api/v1/stats/hourly?hours=24", "/api/v1/stats/monthly",
         "/api/v1/errors/distribution?hours=24"]
res = []
s = requests.Session()  # one keep-alive connection, as a dashboard keeps its own
for scope in ("", "bench"):
    for p in PATHS:
        path = p + (("&" if "?" in p else "?") + "dataset=" + scope if scope else "")
        for _ in range(warmup):
            s.get(url + path).raise_for_status()
        lat = []
        for _ in range(reqs):
            t0 = time.perf_counter()
            r = s.get(url + path)
            body = r.content
            lat.append(1e3 * (time.perf_counter() - t0))
            if r.status_code != 200:
                sys.exit("%s: HTTP %d %s" % (path, r.status_code, body[:200]))
        j = r.json()
        items = len(j["items"]) if "items" in j else None
        cl = []
        for _ in range(curl_reqs):
            c = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total}", url + path],
                               capture_output=True, text=True, check=True)
            cl.append(1e3 * float(c.stdout))
        res.append({"path": path, "lat_ms": lat, "bytes": len(body), "items": items,
                    "curl_ms": cl, "sample": j if items is None else None})
        print("  %-55s median %6.2f ms  max %6.2f ms  (%d bytes%s)" % (
            path, statistics.median(lat), max(lat), len(body),
            "" if items is None else ", %d items" % items), file=sys.stderr)
json.dump(res, open(out, "w"))
EOF
MEAS_S=$(awk -v a="$T_M0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}')
SERVER_CPU=$(awk -v t=$(($(cpu_ticks "$SERVER_PID") - C0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')
MACHINE_CPU=$(awk -v t=$(($(machine_ticks) - M0)) -v h="$CLK_TCK" 'BEGIN {print t / h}')
stop_server
TOTAL_S=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}')

# ---- report --------------------------------------------------------------------------------
"$PY" - "$WORK/machine.json" "$WORK/tables.json" "$WORK/latency.json" "$WORK/batches.jsonl" "${DOC:-}" \
    "$LOAD_S" "$SEED_S" "$MEAS_S" "$SERVER_CPU" "$MACHINE_CPU" "$TOTAL_S" <<'EOF'
import json, math, statistics, sys

BEGIN, END, NOTES = "<!-- bench:stats:begin -->", "<!-- bench:stats:end -->", "<!-- bench:stats:notes -->"
HEADING = "## KPI and error views at 10 million rows"
m = json.load(open(sys.argv[1]))
t = json.load(open(sys.argv[2]))
lat = json.load(open(sys.argv[3]))
batches = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
doc = sys.argv[5] or None
load_s, seed_s, meas_s, server_cpu, machine_cpu, total_s = map(float, sys.argv[6:12])
target = m["target_ms"]


def q(xs, p):  # nearest-rank percentile
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


received = sum(b["row_count_total"] for b in batches)
invalid = sum(b["row_count_invalid"] for b in batches)
out = []
w = out.append
w(f"Measured {m['date']} by `{m['command']}` ({total_s:.0f} s in all); binary: {m['sluice_version']}"
  f" (work tree at {m['git']}).")
w("")
w("| machine | |")
w("|---|---|")
w(f"| CPU | {m['nproc']} × {m['cpu']} ({m['virt']}), {m['mem']} RAM |")
w(f"| OS, kernel | {m['os']}, {m['kernel']} |")
w(f"| disk of the data dir | {m['disk']} (as the kernel reports it) |")
w(f"| client | {m['requests']}: one keep-alive `requests.Session`, {m['warmup']} warm-up requests"
  f" then {m['reqs']} sequential ones per view, each timed from send to the body's last byte |")
w("")
w("| store | |")
w("|---|---|")
w(f"| real rows | bench/csv_gen.py --rows {m['chunk']:,} --seed {m['seed']} ({m['csv_bytes']:,} bytes,"
  f" {m['invalid_pct']}% invalid) uploaded {m['uploads']} × by curl as CSV batches:"
  f" {received:,} rows received, **{t['ds_bench']:,} stored** in `ds_bench` (count(*) = the batches'"
  f" row_count_inserted), {invalid:,} rejected into the DLQ ({t['dlq']:,} entries); {load_s:.0f} s |")
w(f"| synthetic rollups | {m['days']} days × 24 hours for {t['datasets']} datasets (bench, hist1..hist{m['hist']}),"
  f" 8 error codes each; seeded with sqlite3 in {seed_s:.1f} s |")
w(f"| rollup rows | rollup_hour {t['rollup_hour']:,}; rollup_day {t['rollup_day']:,}; rollup_errors {t['rollup_errors']:,};"
  f" rollup_minute {t['rollup_minute']:,}; dataset_activity {t['dataset_activity']:,}"
  f" (all-time rows_received {t['rows_received_all_time']:,}) |")
w(f"| other tables | batches {t['batches']:,}; dlq {t['dlq']:,}; database {t['db_bytes'] / 2**20:,.0f} MiB |")
w("")
w(f"| endpoint | median | p95 | p99 | max | target (< {target} ms) | met? | bytes | curl, new connection (median of {m['curl_reqs']}) |")
w("|---|---|---|---|---|---|---|---|---|")
missed = []
for r in lat:
    x = r["lat_ms"]
    ok = max(x) < target
    if not ok:
        missed.append(r["path"])
    w(f"| `GET {r['path']}` | {statistics.median(x):.2f} ms | {q(x, 95):.2f} ms | {q(x, 99):.2f} ms |"
      f" {max(x):.2f} ms | < {target} ms | {'yes' if ok else '**no**'} |"
      f" {r['bytes']:,}{'' if r['items'] is None else ' (%d items)' % r['items']} |"
      f" {statistics.median(r['curl_ms']):.2f} ms |")
w("")
w(f"*met?* asks every one of the {m['reqs']} requests (the max) to stay under {target} ms."
  f" With `?dataset=` every view answers for that dataset only."
  f" `monthly` without `?months=` covers 12 × 31 days, so the whole year of history."
  f" During the {meas_s:.0f} s of measuring the server used {server_cpu:.1f} s of CPU and the whole machine"
  f" {machine_cpu:.1f} s (the client and curl included; others' work on this shared machine too).")
w("")
w(f"What is synthetic: only the rollups of the history. The {m['uploads']} uploads are real: sluice validated,"
  " stored and counted those rows itself (rollups in the same transaction). Then, with the server"
  f" stopped, sqlite3 added {m['days'] * 24:,} hourly rows per dataset for bench and hist1..hist{m['hist']}"
  " (a daily curve peaking at 450–2,450 rows an hour for hist1..hist9 and 1,000 for bench, plus up to 20%, 0.1–3% rejected, 1–6 batches an hour, about"
  " 1% of hours with a failed batch), 8 error codes per dataset and hour with a sample message, every"
  " minute of the last 2 days in rollup_minute, and dataset_activity for the hist datasets, added to"
  " the real counts where an hour or minute had both. No rows, batches or DLQ entries were added for"
  " the history, so the views' reads of `batches` and `dlq` (KPIs) see only the real"
  f" {t['batches']} batches and {t['dlq']:,} DLQ entries.")
text = "\n".join(out) + "\n"
print(text)
if missed:
    print("stats_run.sh: over %d ms: %s" % (target, ", ".join(missed)), file=sys.stderr)

if doc:
    try:
        cur = open(doc, newline="").read()
    except FileNotFoundError:
        cur = "# Performance\n"
    notes = ""
    if BEGIN in cur and END in cur:
        old = cur[cur.index(BEGIN):cur.index(END)]
        if NOTES in old:
            notes = old[old.index(NOTES):]
    block = f"{BEGIN}\n{text}{notes}{END}"
    if BEGIN in cur and END in cur:
        new = cur[:cur.index(BEGIN)] + block + cur[cur.index(END) + len(END):]
    else:
        new = cur + ("" if cur.endswith("\n") or not cur else "\n") + f"\n{HEADING}\n\n{block}\n"
    open(doc, "w", newline="").write(new)
    print(f"stats_run.sh: wrote {doc}", file=sys.stderr)
EOF
