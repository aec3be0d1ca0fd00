"""The rollups behind /api/v1/stats and /api/v1/errors: the live ones (summed at commit) and
`sluice rollups rebuild` (from the rollup ledger) follow one definition of every count
(docs/api.md, "What the counts mean"), so a rebuild after any workload changes nothing; and
the rebuild works in chunks, each a short transaction, so ingest goes on during it."""
import json
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, SANITIZED, wait_for

SLOW = 2 if SANITIZED else 1
FINAL = ("completed", "failed")


def upload(server, dataset, body, **params):
    r = requests.post(f"{server.url}/api/v1/datasets/{dataset}/batches", data=body,
                      params=params, headers={"Content-Type": "text/csv"}, timeout=120)
    assert r.status_code == 202, r.text
    return r.json()["batch_id"]


def wait_final(server, bid, timeout=120):
    return wait_for(lambda: (lambda b: b if b["status"] in FINAL else None)(
        server.get(f"/api/v1/batches/{bid}").json()), timeout=timeout * SLOW,
        what=f"batch {bid} to finish")


def push(server, dataset, rows, status=None):
    r = server.post_events(dataset, "".join(json.dumps(x) + "\n" for x in rows))
    if status is not None:
        assert r.status_code == status, r.text
    return r


def jrow(n, amount=5):
    return {"case_number": f"CASE-{n:07d}", "amount": amount, "filed_date": "2024-01-01"}


def rollup_tables(server):
    """Every rollup table, as sets of rows (the error codes' sample message aside: it is
    one of the code's messages, not a count)."""
    q = {
        "minute": "SELECT dataset, minute, received, accepted, rejected, duplicate"
                  " FROM rollup_minute",
        "hour": "SELECT dataset, hour, received, accepted, rejected, duplicate, batches,"
                " batches_failed FROM rollup_hour",
        "day": "SELECT dataset, day, received, accepted, rejected, duplicate, batches,"
               " batches_failed FROM rollup_day",
        "errors": "SELECT hour, dataset, code, occurrences, batches, last_seen_ms"
                  " FROM rollup_errors",
        "activity": "SELECT dataset, last_received_ms, last_error_ms FROM dataset_activity",
    }
    with server.db() as db:
        return {k: sorted(db.query(v)) for k, v in q.items()}


def rebuild(server):
    p = subprocess.run([BIN, "rollups", "rebuild", "--config", server.config_path],
                       capture_output=True, text=True, timeout=300 * SLOW)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_rebuild_agrees_with_the_live_rollups_after_a_mixed_workload(server):
    s = server
    # pushes: valid, invalid (two errors on one row), a refused duplicate key
    push(s, "judgments", [jrow(1), jrow(2), {"case_number": "bad", "amount": -1,
                                             "filed_date": "2024-01-01"}], 207)
    push(s, "judgments", [jrow(1), jrow(3)], 207)  # CASE-0000001: DUPLICATE_KEY
    # keyed duplicates in skip and upsert datasets
    push(s, "skips", [{"id": 1}, {"id": 2}], 200)
    push(s, "skips", [{"id": 1}, {"id": 3}], 200)  # id 1 skipped
    push(s, "upserts", [{"id": 1, "v": "a"}, {"id": 2}], 200)
    push(s, "upserts", [{"id": 1, "v": "b"}], 200)  # replaces id 1
    # a batch over its threshold fails (1 of 2 rows invalid > 10%)
    failed = wait_final(s, upload(s, "judgments",
                                  b"case_number,amount,filed_date\n"
                                  b"CASE-0000100,1,2024-01-01\nCASE-0000101,-1,2024-01-01\n"))
    assert failed["status"] == "failed", failed
    # a completed batch with an invalid row and a refused duplicate (CASE-0000002 is stored)
    done = wait_final(s, upload(s, "judgments",
                                b"case_number,amount,filed_date\n"
                                b"CASE-0000200,1,2024-01-01\nCASE-0000201,1,2024-01-01\n"
                                b"CASE-0000202,-3,2024-01-01\nCASE-0000002,1,2024-01-01\n"
                                b"CASE-0000203,1,2024-01-01\n", error_threshold_percent=50))
    assert (done["status"], done["row_count_inserted"], done["row_count_invalid"],
            done["row_count_duplicate"]) == ("completed", 3, 1, 1), done
    # batches with a skipped and with a replacing duplicate
    skipb = wait_final(s, upload(s, "skips", b"id,v\n1,x\n10,y\n"))
    assert (skipb["status"], skipb["row_count_duplicate"]) == ("completed", 1), skipb
    upb = wait_final(s, upload(s, "upserts", b"id,v\n1,c\n20,d\n"))
    assert upb["status"] == "completed", upb
    # a DLQ retry that resolves: the row CASE-0000300 conflicts with is deleted first
    keep = wait_final(s, upload(s, "judgments",
                                b"case_number,amount,filed_date\nCASE-0000300,1,2024-01-01\n"))
    push(s, "judgments", [jrow(300)], 422)
    entry = [e for e in s.get("/api/v1/dlq", params={"dataset": "judgments",
                                                      "error_code": "DUPLICATE_KEY"}).json()
             ["items"] if "CASE-0000300" in json.dumps(e)][0]
    assert s.delete(f"/api/v1/batches/{keep['batch_id']}").status_code == 200
    r = s.post(f"/api/v1/dlq/{entry['id']}/retry")
    assert r.status_code == 200 and r.json()["status"] == "resolved", r.text
    # a re-ingest (the completed batch again) and a reset that is processed again
    assert s.post(f"/api/v1/batches/{done['batch_id']}/reprocess").status_code == 200
    again = wait_final(s, done["batch_id"])
    assert (again["status"], again["row_count_inserted"]) == ("completed", 3), again
    assert s.post(f"/api/v1/batches/{skipb['batch_id']}/reset").status_code == 200
    wait_final(s, skipb["batch_id"])

    live = rollup_tables(s)
    kpis = s.get("/api/v1/stats/kpis").json()["all_time"]
    out = rebuild(s)
    assert rollup_tables(s) == live
    assert s.get("/api/v1/stats/kpis").json()["all_time"] == kpis
    assert out["rollups"] == "rebuilt" and out["chunks"] >= 3, out
    # one definition: received = accepted + rejected + duplicate, except a failed batch's
    # rows without an error (received, neither accepted nor rejected: here 1)
    assert kpis["rows_received"] == (kpis["rows_inserted"] + kpis["rows_invalid"]
                                     + kpis["rows_duplicate"] + 1), kpis
    # pushes 3+2+2+2+2+1 + failed 2 + completed 5 + skips 2 + upserts 2 + the push of 300
    # (the deleted batch's row is taken out); the retry changes no count
    assert kpis["rows_received"] == 12 + 2 + 5 + 2 + 2 + 1, kpis
    # rejected: the invalid pushed row, 2 refused duplicates pushed, the failed batch's
    # invalid row, the completed batch's invalid row and its refused duplicate
    assert kpis["rows_invalid"] == 6, kpis
    assert kpis["rows_duplicate"] == 2, kpis  # skipped: one pushed, one in a batch


def test_rebuild_throws_away_stale_rollups(server):
    push(server, "events", [{"id": 1}, {"id": "x"}], 207)
    live = rollup_tables(server)
    with server.db(readonly=False) as db:
        db.execute("UPDATE rollup_hour SET received = received + 7")
        db.execute("INSERT INTO rollup_day(dataset, day, received) VALUES ('ghost', 3, 9)")
    rebuild(server)
    assert rollup_tables(server) == live


def test_ingest_goes_on_during_a_rebuild(server):
    s = server
    n = 200_000
    body = b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(n))
    b = wait_final(s, upload(s, "events", body), timeout=300)
    assert (b["status"], b["row_count_inserted"]) == ("completed", n), b
    for d in range(3):  # more datasets, more chunks
        push(s, "anything", [{"k": d}], 200)
        push(s, "skips", [{"id": 1000 + d}], 200)
    stop = threading.Event()
    statuses, latencies, sent = [], [], []

    def pusher():
        i = 0
        while not stop.is_set() and i < 5000:
            t0 = time.monotonic()
            r = push(s, "events", [{"id": 10_000_000 + i, "name": "during"}])
            latencies.append(time.monotonic() - t0)
            statuses.append(r.status_code)
            if r.status_code == 200:
                sent.append(i)
            i += 1

    t = threading.Thread(target=pusher)
    t.start()
    try:
        wait_for(lambda: len(statuses) >= 5, what="pushes before the rebuild")
        out = rebuild(s)
        k = len(statuses)
        wait_for(lambda: len(statuses) >= k + 5, what="pushes after the rebuild")
    finally:
        stop.set()
        t.join(60)
    assert out["chunks"] > 1, out
    assert set(statuses) == {200}, sorted(set(statuses))
    assert max(latencies) < 5 * SLOW, max(latencies)
    with s.db() as db:
        stored = db.query("SELECT count(*) FROM ds_events WHERE name = 'during'")[0][0]
    assert stored == len(sent)
    kpis = s.get("/api/v1/stats/kpis", params={"dataset": "events"}).json()["all_time"]
    assert kpis["rows_received"] == n + len(sent), kpis
