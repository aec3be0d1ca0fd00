"""peer_fastapi.py - the benchmark's peer: a minimal FastAPI service doing what
sluice does for the `judgments` schema, so bench/run.sh can state a ratio.

    POST /api/v1/datasets/{name}/events
        Content-Type: application/x-ndjson (one object a line) or application/json
        (one object or an array of objects)

Each row is checked against the judgments rules (required case_number, amount,
filed_date; case_number matches ^CASE-[0-9]{7}$; amount is a number >= 0;
filed_date is YYYY-MM-DD and a real calendar date; status in open/closed/pending;
notes at most 2000 code points; no other properties). Valid rows go into SQLite
(WAL, synchronous=FULL) in one transaction per request, committed before the
answer is sent: the same durability promise as sluice, but no group commit.
The answer has sluice's shape: {"ingest_id","received","accepted","rejected",
"duplicates","errors","errors_truncated"}.

Run (what run.sh does):
    PEER_DB=/tmp/x/peer.db /usr/bin/python3 -m uvicorn --app-dir bench \
        peer_fastapi:app --host 127.0.0.1 --port 18081 --workers 2 --no-access-log

Environment: PEER_DB (the SQLite file; default ./peer.db), PEER_DATASETS
(comma-separated dataset names; default "judgments,bench"; all use the
judgments schema, and `judgments` alone keeps case_number unique),
PEER_MODE and PEER_FLOCK (below).

Two choices make this peer as fast as we could get it without leaving "a
minimal FastAPI endpoint" (measured on the benchmark machine, 64 connections):
- PEER_MODE=loop (default): the handler does its SQLite work on the event loop.
  PEER_MODE=threads (FastAPI's advice for blocking calls: its thread pool, a
  connection a thread) was slower here: ~775 req/s single rows and ~40k rows/s
  in batches with p99 0.9-1.9 s, as the threads fight for SQLite's write lock.
- PEER_FLOCK=1 (default): the two workers queue for the write lock on a
  flock(); SQLite's own busy handler polls with sleeps of 1, 2, 5, 10... ms and
  cost 20-30% (~920 instead of ~1350 req/s single rows, ~65k instead of ~80k
  rows/s in batches).
"""
import datetime
import fcntl
import json
import math
import os
import re
import sqlite3
import threading
import uuid

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

DB_PATH = os.environ.get("PEER_DB", "peer.db")
DATASETS = [d for d in os.environ.get("PEER_DATASETS", "judgments,bench").split(",") if d]
KEYED = {"judgments": "case_number"}
MAX_ERRORS = 100

CASE_RE = re.compile(r"CASE-[0-9]{7}")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FIELDS = ("case_number", "amount", "filed_date", "status", "notes")
ALLOWED = frozenset(FIELDS)
REQUIRED = ("case_number", "amount", "filed_date")
STATUSES = frozenset(("open", "closed", "pending"))


def validate(row):
    """The row's errors as (field, code, message) tuples; empty when valid."""
    if not isinstance(row, dict):
        return [(None, "NOT_AN_OBJECT", "expected a JSON object")]
    errs = []
    for k in row:
        if k not in ALLOWED:
            errs.append((k, "UNKNOWN_FIELD", "unknown field"))
    for k in REQUIRED:
        if k not in row:
            errs.append((k, "MISSING_FIELD", "required"))
    v = row.get("case_number")
    if v is not None:
        if not isinstance(v, str):
            errs.append(("case_number", "INVALID_TYPE", "expected string"))
        elif not CASE_RE.fullmatch(v):
            errs.append(("case_number", "PATTERN_MISMATCH", "does not match ^CASE-[0-9]{7}$"))
    v = row.get("amount")
    if v is not None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (
                isinstance(v, float) and not math.isfinite(v)):
            errs.append(("amount", "INVALID_TYPE", "expected number"))
        elif v < 0:
            errs.append(("amount", "OUT_OF_RANGE", "must be >= 0"))
    v = row.get("filed_date")
    if v is not None:
        ok = isinstance(v, str) and len(v) == 10 and DATE_RE.fullmatch(v) is not None
        if ok:
            try:
                datetime.date(int(v[0:4]), int(v[5:7]), int(v[8:10]))
            except ValueError:
                ok = False
        if not ok:
            errs.append(("filed_date", "INVALID_DATE_FORMAT", "expected a date YYYY-MM-DD"))
    v = row.get("status")
    if v is not None and (not isinstance(v, str) or v not in STATUSES):
        errs.append(("status", "NOT_IN_ENUM", "must be one of open, closed, pending"))
    v = row.get("notes")
    if v is not None:
        if not isinstance(v, str):
            errs.append(("notes", "INVALID_TYPE", "expected string"))
        elif len(v) > 2000:  # str length is in code points, as JSON Schema's maxLength
            errs.append(("notes", "TOO_LONG", "exceeds maxLength 2000"))
    return errs


def connect():
    db = sqlite3.connect(DB_PATH, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=30000")
    db.execute("BEGIN IMMEDIATE")
    for name in DATASETS:
        db.execute(
            f'CREATE TABLE IF NOT EXISTS "ds_{name}" (_id INTEGER PRIMARY KEY,'
            " _ingest_id TEXT NOT NULL, _source TEXT, _received_at TEXT NOT NULL, _extra TEXT,"
            " case_number TEXT, amount REAL, filed_date TEXT, status TEXT, notes TEXT)")
        if name in KEYED:
            db.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "ds_{name}_key" ON "ds_{name}"(case_number)')
    db.execute("COMMIT")
    return db


app = FastAPI()
MODE = os.environ.get("PEER_MODE", "loop")
_local = threading.local()
# The workers take turns at SQLite's write lock. SQLite's busy handler polls it
# with sleeps of 1, 2, 5, 10... ms; a blocking flock() on a side file hands the
# turn over at once (PEER_FLOCK=0 to leave it to SQLite).
# (flock() excludes processes, not the threads of one: PEER_MODE=loop only.)
LOCK = (os.open(DB_PATH + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
        if os.environ.get("PEER_FLOCK", "1") == "1" and MODE == "loop" else None)


def conn():
    """This thread's connection (SQLite connections are not shared between threads)."""
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = connect()
    return db


conn()  # the tables exist before the first request

INSERT = {
    name: f'INSERT {"OR IGNORE " if name in KEYED else ""}INTO "ds_{name}" (_ingest_id, _source,'
          " _received_at, case_number, amount, filed_date, status, notes) VALUES (?,?,?,?,?,?,?,?)"
    for name in DATASETS
}


def error(status, code, message):
    return status, {"error": {"code": code, "message": message}}


def ingest(name, ctype, body):
    """Parse, validate and store one request's rows: (HTTP status, answer)."""
    if name not in INSERT:
        return error(404, "DATASET_NOT_FOUND", f"no dataset named '{name}'")
    ctype = ctype.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return error(400, "INVALID_UTF8", "the body is not valid UTF-8")
    rows = []  # (row number, parsed object or None, parse error)
    if ctype in ("application/x-ndjson", "application/ndjson"):
        for i, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    rows.append((i, json.loads(line), None))
                except ValueError as e:
                    rows.append((i, None, str(e)))
    elif ctype == "application/json":
        try:
            doc = json.loads(text)
        except ValueError as e:
            return error(400, "MALFORMED_JSON", str(e))
        rows = [(i, r, None) for i, r in enumerate(doc if isinstance(doc, list) else [doc], 1)]
    else:
        return error(415, "UNSUPPORTED_MEDIA_TYPE", "application/json or application/x-ndjson")
    if not rows:
        return error(400, "BAD_REQUEST", "the body holds no rows")

    ingest_id = "ing_" + uuid.uuid4().hex
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    errors, good, rejected = [], [], 0
    for n, obj, perr in rows:
        errs = [(None, "MALFORMED_JSON", perr)] if perr is not None else validate(obj)
        if errs:
            rejected += 1
            errors.extend({"row": n, "field": f, "code": c, "message": m} for f, c, m in errs)
            continue
        good.append((n, (ingest_id, "api", now, obj["case_number"], obj["amount"],
                         obj["filed_date"], obj.get("status"), obj.get("notes"))))

    accepted = duplicates = 0
    if good:
        db = conn()
        if LOCK is not None:
            fcntl.flock(LOCK, fcntl.LOCK_EX)
        db.execute("BEGIN IMMEDIATE")
        try:
            ins = INSERT[name]
            if name in KEYED:  # one by one, to tell duplicates
                for n, params in good:
                    if db.execute(ins, params).rowcount == 1:
                        accepted += 1
                    else:
                        rejected += 1
                        errors.append({"row": n, "field": "case_number", "code": "DUPLICATE_KEY",
                                       "message": "a row with this case_number is already stored"})
            else:
                db.executemany(ins, [p for _, p in good])
                accepted = len(good)
            db.execute("COMMIT")  # synchronous=FULL: returns once the WAL is fsynced
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            if LOCK is not None:
                fcntl.flock(LOCK, fcntl.LOCK_UN)
    status = 200 if rejected == 0 else 422 if accepted == 0 else 207
    return status, {"ingest_id": ingest_id, "received": len(rows), "accepted": accepted,
                    "rejected": rejected, "duplicates": duplicates,
                    "errors": errors[:MAX_ERRORS], "errors_truncated": len(errors) > MAX_ERRORS}


@app.post("/api/v1/datasets/{name}/events")
async def events(name: str, request: Request):
    body = await request.body()
    ctype = request.headers.get("content-type", "")
    if MODE == "threads":  # FastAPI's advice for blocking work: its thread pool
        status, answer = await run_in_threadpool(ingest, name, ctype, body)
    else:  # "loop": block the event loop for the whole request
        status, answer = ingest(name, ctype, body)
    return JSONResponse(answer, status_code=status)
