"""CSV batches (docs/api.md, "CSV batches"): upload, the state machine, row errors (JSON and
CSV), the DLQ, the threshold, reset / reprocess / fail / delete, the list, crash recovery
during `inserting`, and a streamed 1.5 GB upload with bounded memory.

The csv-spectrum suite is read from ../shared/suites/csv-spectrum (conftest.SHARED), never
copied into the repository. Stored rows are read through conftest's read-only server.db()."""
import base64
import contextlib
import csv
import datetime
import hashlib
import io
import json
import os
import re
import threading
import time

import pytest
import requests

from conftest import JUDGMENTS, SANITIZED, SHARED, STORE

SPECTRUM = os.path.join(SHARED, "suites", "csv-spectrum")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FINAL = ("completed", "failed")
BATCH_KEYS = {"batch_id", "dataset", "source", "filename", "bytes", "sha256", "status",
              "rejection_reason", "error_threshold_percent", "row_count_total",
              "row_count_inserted", "row_count_invalid", "row_count_duplicate",
              "row_count_discarded", "attempts",
              "worker", "created_at", "updated_at", "started_at", "finished_at", "heartbeat_at"}
SLOW = 2 if SANITIZED else 1


# ---------------------------------------------------------------- helpers

def upload(server, dataset, body, params=None, ctype="text/csv", timeout=120):
    headers = {"Content-Type": ctype} if ctype is not None else {}
    return requests.post(f"{server.url}/api/v1/datasets/{dataset}/batches", data=body,
                         params=params, headers=headers, timeout=timeout)


def upload_ok(server, dataset, body, params=None):
    r = upload(server, dataset, body, params)
    assert r.status_code == 202, r.text
    return r.json()["batch_id"]


def get_batch(server, bid):
    r = server.get(f"/api/v1/batches/{bid}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(server, bid, statuses=FINAL, timeout=60):
    deadline = time.time() + timeout * SLOW
    b = None
    while time.time() < deadline:
        b = get_batch(server, bid)
        if b["status"] in statuses:
            return b
        time.sleep(0.05)
    pytest.fail(f"batch {bid} did not reach {statuses} within {timeout * SLOW}s; last seen: {b}")


def sql(server, query, args=()):
    with server.db() as db:
        return db.query(query, args)


def table_exists(server, name):
    with server.db() as db:
        return db.table_exists(name)


def batch_row_count(server, dataset, bid):
    if not table_exists(server, f"ds_{dataset}"):
        return 0
    return sql(server, f'SELECT COUNT(*) FROM "ds_{dataset}" WHERE _batch_id = ?', (bid,))[0][0]


def errors_json(server, bid):
    r = server.get(f"/api/v1/batches/{bid}/errors")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["batch_id"] == bid
    assert body["next_cursor"] is None
    return body["items"]


def error_tuples(items):
    return [(e["row_number"], e["error_code"], e["field"]) for e in items]


def dlq_all(server, dataset, status="all"):
    items, after = [], None
    while True:
        params = {"dataset": dataset, "status": status, "limit": 1000, "order": "asc"}
        if after:
            params["cursor"] = after
        r = server.get("/api/v1/dlq", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        after = body["next_cursor"]
        if after is None:
            return items


def assert_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text


@contextlib.contextmanager
def reap_on_failure(server):
    """A server stuck by a bug may not stop on SIGTERM: SIGKILL it when the test fails, so
    that no process outlives the test (the fixture's SIGTERM would time out)."""
    try:
        yield
    except BaseException:
        if server.proc is not None and server.proc.poll() is None:
            server.kill9()
        raise


def history_statuses(b):
    return [h["status"] for h in b["history"]]


def csv_field(v):
    if any(c in v for c in ',"\r\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


# ---------------------------------------------------------------- judgments CSV generation

J_HEADER = ["notes", "status", "amount", "filed_date", "case_number"]   # not the schema order


def j_good(i):
    """Field values (dict) of a valid judgments row with key number i."""
    notes = {0: "", 3: "has, a comma", 5: 'line one\nline "two"', 7: f"plain note {i}"}.get(
        i % 10, f"n{i}")
    return {"case_number": f"CASE-{i:07d}",
            "amount": f"{(i * 37) % 10000}.{i % 100:02d}",
            "filed_date": str(datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 365)),
            "status": ("open", "closed", "pending")[i % 3],
            "notes": notes}


def j_record(vals):
    return ",".join(csv_field(vals[c]) for c in J_HEADER).encode()


def j_expected(vals):
    return (vals["case_number"], float(vals["amount"]), vals["filed_date"], vals["status"],
            vals["notes"] or None)  # an empty cell is null


def j_stored(server, bid=None):
    q = "SELECT case_number, amount, filed_date, status, notes FROM ds_judgments"
    args = ()
    if bid:
        q += " WHERE _batch_id = ?"
        args = (bid,)
    return sql(server, q + " ORDER BY _id", args)


def j_file(n, bad=None, base=0, eol=b"\n"):
    """A judgments CSV of n data rows (keys base+1..base+n). bad maps a row number to
    a function vals -> raw record bytes. Returns (bytes, expected stored rows, raw records)."""
    bad = bad or {}
    out = [",".join(J_HEADER).encode()]
    expected, raws = [], {}
    for row in range(1, n + 1):
        vals = j_good(base + row)
        if row in bad:
            raw = bad[row](vals)
        else:
            raw = j_record(vals)
            expected.append(j_expected(vals))
        raws[row] = raw
        out.append(raw)
    return eol.join(out) + eol, expected, raws


def with_(**kw):
    return lambda vals: j_record(dict(vals, **kw))


# ---------------------------------------------------------------- csv-spectrum

def spectrum_files():
    d = os.path.join(SPECTRUM, "csvs")
    return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".csv")
                  and f != "location_coordinates.csv")


@pytest.mark.parametrize("name", spectrum_files())
def test_csv_spectrum(make_server, name):
    path = os.path.join(SPECTRUM, "csvs", name + ".csv")
    with open(os.path.join(SPECTRUM, "json", name + ".json"), encoding="utf-8") as f:
        expected = json.load(f)
    with open(path, "rb") as f:
        data = f.read()
    header = next(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    ds = "spec_" + name
    props = "\n".join(f'        "{h}": {{type: string}}' for h in header)
    # csv-spectrum reads every cell as text, an empty one as "": csv_empty_string keeps it so
    # (by default an empty cell is null, docs/api.md "CSV cells")
    server = make_server(datasets_yaml=f"""
  - name: {ds}
    csv_empty_string: true
    schema:
      type: object
      properties:
{props}
""")
    bid = upload_ok(server, ds, data)
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"],
            b["row_count_duplicate"]) == (len(expected), len(expected), 0, 0), b
    cols = ", ".join(f'"{h}"' for h in header)
    rows = sql(server, f'SELECT {cols}, _extra FROM "ds_{ds}" ORDER BY _id')
    assert [dict(zip(header, r[:-1])) for r in rows] == expected
    assert all(r[-1] is None for r in rows), "no undeclared fields were sent"
    assert errors_json(server, bid) == []


def test_csv_spectrum_location_coordinates(make_server):
    """Its data record has a bare `"` inside an unquoted field (`37.8"N`): MALFORMED_CSV.
    One row of one invalid: 100% > 10% fails the batch; with the threshold at 100 it
    completes with the row in the DLQ. Nothing crashes."""
    with open(os.path.join(SPECTRUM, "csvs", "location_coordinates.csv"), "rb") as f:
        data = f.read()
    record = data.split(b"\n")[1]
    server = make_server(datasets_yaml="""
  - name: places
    schema: {type: object}
""")
    bid = upload_ok(server, "places", data)
    b = wait_status(server, bid)
    assert b["status"] == "failed", b
    assert b["rejection_reason"] == "Error rate 100.0% > 10.0% threshold", b
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"]) == (1, 0, 1)
    assert error_tuples(errors_json(server, bid)) == [(1, "MALFORMED_CSV", None)]
    assert batch_row_count(server, "places", bid) == 0

    bid2 = upload_ok(server, "places", data, params={"error_threshold_percent": "100"})
    b2 = wait_status(server, bid2)
    assert b2["status"] == "completed", b2
    assert b2["error_threshold_percent"] == 100
    assert (b2["row_count_total"], b2["row_count_inserted"], b2["row_count_invalid"],
            b2["row_count_duplicate"]) == (1, 0, 1, 0), b2
    assert error_tuples(errors_json(server, bid2)) == [(1, "MALFORMED_CSV", None)]
    assert batch_row_count(server, "places", bid2) == 0
    dlq = dlq_all(server, "places")
    assert len(dlq) == 1, dlq
    assert dlq[0]["row"] == 1
    assert dlq[0]["payload_base64"] is False
    assert dlq[0]["payload"].encode().rstrip(b"\r\n") == record
    assert [e["code"] for e in dlq[0]["errors"]] == ["MALFORMED_CSV"]
    assert server.proc.poll() is None
    assert server.get("/healthz").status_code == 200


# ---------------------------------------------------------------- dialect

def test_csv_dialect_bom_line_ends_types(make_server):
    """BOM skipped, CRLF / LF / CR mixed, empty lines (middle and end) ignored, columns in
    any order, values converted to the field type, empty field: null (absent) for every type
    (docs/api.md, "CSV cells")."""
    server = make_server(datasets_yaml="""
  - name: typed
    schema:
      type: object
      required: [id]
      properties:
        id: {type: integer}
        price: {type: number}
        ok: {type: boolean}
        label: {type: string}
""")
    body = (b"\xef\xbb\xbf" + b"label,ok,id,price\r\n"
            b"alpha,true,1,2.5\n"
            b"\n"
            b",false,2,\r"
            b'"multi\r\nline",,3,-0.25\r\n'
            b"\r\n"
            b"zeta,true,4,10\n\n\n")
    bid = upload_ok(server, "typed", body)
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"]) == (4, 4, 0), b
    assert errors_json(server, bid) == []
    rows = sql(server, "SELECT id, price, ok, label, _extra FROM ds_typed ORDER BY _id")
    assert rows == [(1, 2.5, 1, "alpha", None),
                    (2, None, 0, None, None),
                    (3, -0.25, None, "multi\r\nline", None),
                    (4, 10.0, 1, "zeta", None)]
    assert [type(r[0]) for r in rows] == [int] * 4


# ---------------------------------------------------------------- 1,000-row judgments file

JUDG_BAD = {
    50: (with_(case_number="CASE-50"), "PATTERN_MISMATCH", "case_number"),
    120: (with_(amount="-5.25"), "OUT_OF_RANGE", "amount"),
    200: (with_(filed_date="2023-02-29"), "INVALID_DATE_FORMAT", "filed_date"),
    333: (with_(status="archived"), "NOT_IN_ENUM", "status"),
    480: (lambda v: j_record(v) + b",surplus", "COLUMN_COUNT_MISMATCH", None),
    600: (lambda v: j_record(v).replace(v["amount"].encode(), b'"' + v["amount"].encode() + b'"x'),
          "MALFORMED_CSV", None),
    777: (lambda v: j_record(dict(v, notes="cafe")).replace(b"cafe", b"caf\xe9 \xff\xfe"),
          "INVALID_UTF8", None),
    901: (with_(case_number="CASE-0000010"), "DUPLICATE_KEY", "case_number"),
}


def test_judgments_1000_rows(server):
    data, expected, raws = j_file(1000, {r: f for r, (f, _, _) in JUDG_BAD.items()})
    assert raws[10].split(b",")[-1] == b"CASE-0000010"
    r = upload(server, "judgments", data, params={"source": "vendor-x", "filename": "j.csv"})
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert b["rejection_reason"] is None
    assert set(b) >= BATCH_KEYS, set(BATCH_KEYS) - set(b)
    assert b["dataset"] == "judgments" and b["source"] == "vendor-x" and b["filename"] == "j.csv"
    assert b["row_count_total"] == 1000
    assert b["row_count_inserted"] == 992
    assert b["row_count_total"] == (b["row_count_inserted"] + b["row_count_invalid"]
                                    + b["row_count_duplicate"]), b
    # 7 invalid rows; the 8th is a DUPLICATE_KEY (rejected, in the DLQ) counted as duplicate
    assert (b["row_count_invalid"], b["row_count_duplicate"]) == (7, 1), b
    assert b["attempts"] == 1

    # history: every transition, in order, with its time
    assert history_statuses(b) == ["uploaded", "staging", "validating", "transforming",
                                   "inserting", "completed"], b["history"]
    times = [h["at"] for h in b["history"]]
    assert all(TIME_RE.match(t) for t in times), times
    assert times == sorted(times)
    for k in ("created_at", "started_at", "finished_at", "updated_at"):
        assert TIME_RE.match(b[k] or ""), (k, b[k])
    assert b["created_at"] <= b["started_at"] <= b["finished_at"]

    # the stored rows
    assert j_stored(server) == expected
    assert sql(server, "SELECT COUNT(*) FROM ds_judgments"
                       " WHERE _batch_id IS NULL OR _batch_id <> ?", (bid,)) == [(0,)]

    # row errors, JSON
    want = [(row, code, field) for row, (_, code, field) in sorted(JUDG_BAD.items())]
    items = errors_json(server, bid)
    assert error_tuples(items) == want
    for e in items:
        assert set(e) == {"row_number", "error_code", "field", "error_message", "created_at"}
        assert isinstance(e["error_message"], str) and e["error_message"]
        assert TIME_RE.match(e["created_at"]), e

    # row errors, CSV (both ways of asking)
    for kw in ({"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}):
        r = server.get(f"/api/v1/batches/{bid}/errors", **kw)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].split(";")[0].strip() == "text/csv", r.headers
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
        assert rows[0] == ["batch_id", "row_number", "error_code", "field", "error_message",
                           "created_at"]
        assert [(int(x[1]), x[2], x[3] or None) for x in rows[1:]] == want, rows
        assert all(x[0] == bid for x in rows[1:])
        assert [x[4] for x in rows[1:]] == [e["error_message"] for e in items]
        assert [x[5] for x in rows[1:]] == [e["created_at"] for e in items]

    # the DLQ: every invalid row with its original CSV record
    dlq = sorted(dlq_all(server, "judgments"), key=lambda d: d["row"])
    assert [d["row"] for d in dlq] == sorted(JUDG_BAD), dlq
    for d in dlq:
        _, code, field = JUDG_BAD[d["row"]]
        assert [(e["code"], e["field"]) for e in d["errors"]] == [(code, field)], d
        raw = base64.b64decode(d["payload"]) if d["payload_base64"] else d["payload"].encode()
        assert raw.rstrip(b"\r\n") == raws[d["row"]], (d["row"], raw)
        assert d["payload_base64"] == (d["row"] == 777), d
        assert d["status"] == "open"


# ---------------------------------------------------------------- threshold

def negative(vals):
    return j_record(dict(vals, amount="-1"))


def test_threshold_above_fails_and_stores_nothing(server):
    bad_rows = list(range(1, 200, 5))[:37]               # 37 of 200 = 18.5 %
    data, expected, _ = j_file(200, {r: negative for r in bad_rows})
    bid = upload_ok(server, "judgments", data)
    b = wait_status(server, bid)
    assert b["status"] == "failed", b
    assert b["rejection_reason"] == "Error rate 18.5% > 10.0% threshold", b
    assert b["error_threshold_percent"] == 10
    assert b["row_count_total"] == 200 and b["row_count_invalid"] == 37, b
    assert b["row_count_inserted"] == 0, b
    assert history_statuses(b)[-1] == "failed"
    # One streamed pass validates and inserts; over the threshold it rolls back.
    assert history_statuses(b)[-2:] == ["inserting", "failed"], b["history"]
    assert batch_row_count(server, "judgments", bid) == 0
    if table_exists(server, "ds_judgments"):
        assert sql(server, "SELECT COUNT(*) FROM ds_judgments") == [(0,)]
    # the row errors are still there to download
    assert error_tuples(errors_json(server, bid)) == [(r, "OUT_OF_RANGE", "amount")
                                                      for r in bad_rows]
    r = server.get(f"/api/v1/batches/{bid}/errors", params={"format": "csv"})
    assert r.status_code == 200
    assert len(list(csv.reader(io.StringIO(r.text, newline="")))) == 1 + 37

    # PATCH the threshold, reprocess: completed
    r = requests.patch(f"{server.url}/api/v1/batches/{bid}", json={"error_threshold_percent": 20},
                       timeout=30)
    assert r.status_code == 200, r.text
    assert get_batch(server, bid)["error_threshold_percent"] == 20
    r = server.post(f"/api/v1/batches/{bid}/reprocess")
    assert r.status_code == 200, r.text
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert b["rejection_reason"] is None, b
    assert b["error_threshold_percent"] == 20
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"]) == \
        (200, 163, 37), b
    assert j_stored(server, bid) == expected
    assert error_tuples(errors_json(server, bid)) == [(r, "OUT_OF_RANGE", "amount")
                                                      for r in bad_rows]
    assert sorted(d["row"] for d in dlq_all(server, "judgments")) == bad_rows


def test_threshold_below_and_per_upload(server):
    # 5 of 100 = 5 % <= 10 %: completed
    data, expected, _ = j_file(100, {r: negative for r in (3, 30, 50, 70, 99)})
    bid = upload_ok(server, "judgments", data)
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"]) == (100, 95, 5)
    assert j_stored(server, bid) == expected

    # exactly at the threshold (10 of 100 = 10 %) is not above it
    data, expected, _ = j_file(100, {r: negative for r in range(1, 101, 10)}, base=1000)
    bid = upload_ok(server, "judgments", data)
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert b["row_count_inserted"] == 90

    # 30 % fails with the dataset's 10 %, completes with ?error_threshold_percent=35
    bad = {r: negative for r in range(1, 101) if r % 10 in (1, 4, 7)}
    data, expected, _ = j_file(100, bad, base=2000)
    bid = upload_ok(server, "judgments", data)
    b = wait_status(server, bid)
    assert b["status"] == "failed" and b["rejection_reason"] == \
        "Error rate 30.0% > 10.0% threshold", b
    data, expected, _ = j_file(100, bad, base=3000)
    bid = upload_ok(server, "judgments", data, params={"error_threshold_percent": "35"})
    assert get_batch(server, bid)["error_threshold_percent"] == 35
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    assert b["row_count_inserted"] == 70
    assert j_stored(server, bid) == expected
    # ... and a lower per-upload threshold fails what the dataset would accept
    data, _, _ = j_file(100, {r: negative for r in (3, 30)}, base=4000)
    bid = upload_ok(server, "judgments", data, params={"error_threshold_percent": "1.5"})
    b = wait_status(server, bid)
    assert b["status"] == "failed", b
    assert b["rejection_reason"] == "Error rate 2.0% > 1.5% threshold", b
    assert batch_row_count(server, "judgments", bid) == 0


def test_missing_required_column_fails_at_staging(server):
    body = b"amount,filed_date,status\n1.5,2024-01-01,open\n2.5,2024-01-02,closed\n"
    bid = upload_ok(server, "judgments", body)
    b = wait_status(server, bid)
    assert b["status"] == "failed", b
    assert "missing required column case_number" in (b["rejection_reason"] or ""), b
    hs = history_statuses(b)
    assert hs[-1] == "failed"
    assert hs[-2] == "staging", f"the batch should fail at staging: {b['history']}"
    assert batch_row_count(server, "judgments", bid) == 0


# ---------------------------------------------------------------- operations

LIFE_BAD = {7: with_(case_number="C7"), 40: with_(status="nope"),
            41: with_(case_number="CASE-0000002")}


def test_reprocess_reset_fail_delete(server):
    data, expected, raws = j_file(100, LIFE_BAD)
    bid = upload_ok(server, "judgments", data)
    b = wait_status(server, bid)
    assert b["status"] == "completed", b
    want_errors = [(7, "PATTERN_MISMATCH", "case_number"), (40, "NOT_IN_ENUM", "status"),
                   (41, "DUPLICATE_KEY", "case_number")]

    def check_once(b):
        assert b["status"] == "completed", b
        assert b["row_count_total"] == 100 and b["row_count_inserted"] == 97, b
        assert j_stored(server, bid) == expected
        assert sql(server, "SELECT COUNT(*), COUNT(DISTINCT case_number) FROM ds_judgments") \
            == [(97, 97)]
        assert error_tuples(errors_json(server, bid)) == want_errors
        dlq = dlq_all(server, "judgments")
        assert sorted(d["row"] for d in dlq) == [7, 40, 41], dlq
        for d in dlq:
            assert d["payload"].encode().rstrip(b"\r\n") == raws[d["row"]]

    check_once(b)
    assert server.batch_file(bid) == data

    for _ in range(2):
        r = server.post(f"/api/v1/batches/{bid}/reprocess")
        assert r.status_code == 200, r.text
        b = wait_status(server, bid)
        check_once(b)
        assert history_statuses(b)[-1] == "completed"
    assert history_statuses(b).count("completed") == 3, b["history"]

    r = server.post(f"/api/v1/batches/{bid}/reset")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "uploaded", r.text
    b = wait_status(server, bid)
    check_once(b)

    # fail: 409 once completed, nothing changes
    r = server.post(f"/api/v1/batches/{bid}/fail", json={"reason": "too late"})
    assert_error(r, 409, "CONFLICT")
    assert get_batch(server, bid)["status"] == "completed"

    # delete, dry run: nothing removed, the answer says what would be
    r = server.delete(f"/api/v1/batches/{bid}", params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    ans = r.json()
    assert ans.get("batch_id") == bid, ans
    assert ans.get("dry_run") is True, ans
    assert 97 in [v for v in ans.values() if isinstance(v, int) and not isinstance(v, bool)], ans
    # the file: its path where it is one (SQLite), null when it is in the database
    want_file = os.path.join(server.data_dir, "batches", bid + ".csv") if STORE == "sqlite" \
        else None
    assert ans["file"] == want_file and ans["file_bytes"] == len(data), ans
    check_once(get_batch(server, bid))
    assert server.batch_file(bid) == data

    # delete for real
    r = server.delete(f"/api/v1/batches/{bid}")
    assert r.status_code == 200, r.text
    assert_error(server.get(f"/api/v1/batches/{bid}"), 404, "NOT_FOUND")
    assert_error(server.get(f"/api/v1/batches/{bid}/errors"), 404, "NOT_FOUND")
    assert batch_row_count(server, "judgments", bid) == 0
    assert sql(server, "SELECT COUNT(*) FROM ds_judgments") == [(0,)]
    assert dlq_all(server, "judgments") == []
    assert sql(server, "SELECT COUNT(*) FROM batch_errors WHERE batch_id = ?", (bid,)) == [(0,)]
    assert server.batch_file(bid) is None
    assert bid not in [x["batch_id"] for x in server.get("/api/v1/batches").json()["items"]]
    assert_error(server.delete(f"/api/v1/batches/{bid}"), 404, "NOT_FOUND")


def test_fail_with_reason_and_reset(make_server):
    server = make_server(extra_yaml="batches: {workers: 0}\n")
    data, _, _ = j_file(10)
    bid = upload_ok(server, "judgments", data)
    time.sleep(0.3)
    assert get_batch(server, bid)["status"] == "uploaded"
    # reset of an uploaded batch: nothing to reset
    assert server.post(f"/api/v1/batches/{bid}/reset").status_code == 409
    r = server.post(f"/api/v1/batches/{bid}/fail", json={"reason": "vendor sent the wrong file"})
    assert r.status_code == 200, r.text
    b = get_batch(server, bid)
    assert b["status"] == "failed"
    assert b["rejection_reason"] == "vendor sent the wrong file"
    assert history_statuses(b) == ["uploaded", "failed"]
    assert TIME_RE.match(b["finished_at"] or ""), b
    r = server.post(f"/api/v1/batches/{bid}/reset")
    assert r.status_code == 200, r.text
    b = get_batch(server, bid)
    assert b["status"] == "uploaded" and b["rejection_reason"] is None, b
    # PATCH on a waiting batch
    r = requests.patch(f"{server.url}/api/v1/batches/{bid}", json={"error_threshold_percent": 42.5},
                       timeout=30)
    assert r.status_code == 200, r.text
    assert get_batch(server, bid)["error_threshold_percent"] == 42.5


def test_upsert_and_skip_datasets(server):
    """`upserting` instead of `inserting` for an upsert dataset (a stored key is replaced);
    with on_duplicate: skip a stored key counts as a duplicate, without an error or DLQ entry."""
    b1 = upload_ok(server, "upserts", b"id,v\n1,a\n2,b\n3,c\n")
    assert wait_status(server, b1)["status"] == "completed"
    b2 = upload_ok(server, "upserts", b"v,id\nB,2\nD,4\n")
    b = wait_status(server, b2)
    assert b["status"] == "completed", b
    assert history_statuses(b) == ["uploaded", "staging", "validating", "transforming",
                                   "upserting", "completed"], b["history"]
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"],
            b["row_count_duplicate"]) == (2, 2, 0, 0), b
    assert sql(server, "SELECT id, v FROM ds_upserts ORDER BY id") == \
        [(1, "a"), (2, "B"), (3, "c"), (4, "D")]

    s1 = upload_ok(server, "skips", b"id,v\n1,a\n2,b\n3,c\n")
    assert wait_status(server, s1)["status"] == "completed"
    s2 = upload_ok(server, "skips", b"id,v\n2,x\n3,y\n4,d\n")
    b = wait_status(server, s2)
    assert b["status"] == "completed", b
    assert "inserting" in history_statuses(b)
    assert (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"],
            b["row_count_duplicate"]) == (3, 1, 0, 2), b
    assert errors_json(server, s2) == []
    assert dlq_all(server, "skips") == []
    assert sql(server, "SELECT id, v FROM ds_skips ORDER BY id") == \
        [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


# ---------------------------------------------------------------- list

def test_list_filters_and_pagination(server):
    ids = {"ok": [], "bad": [], "events": []}
    for k in range(3):
        data, _, _ = j_file(5, base=100 * k)
        ids["ok"].append(upload_ok(server, "judgments", data, params={"source": "s1"}))
    data, _, _ = j_file(5, {1: negative, 2: negative}, base=900)
    ids["bad"].append(upload_ok(server, "judgments", data, params={"source": "s2"}))
    for k in range(2):
        ids["events"].append(upload_ok(server, "events", f"id,name\n{k},e{k}\n".encode()))
    for group in ids.values():
        for bid in group:
            wait_status(server, bid)
    allids = sum(ids.values(), [])

    def listing(**params):
        r = server.get("/api/v1/batches", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    body = listing()
    assert body["next_cursor"] is None
    assert sorted(x["batch_id"] for x in body["items"]) == sorted(allids)
    for x in body["items"]:
        assert set(x) >= BATCH_KEYS, x
    assert sorted(x["batch_id"] for x in listing(dataset="judgments")["items"]) == \
        sorted(ids["ok"] + ids["bad"])
    assert sorted(x["batch_id"] for x in listing(status="failed")["items"]) == ids["bad"]
    assert sorted(x["batch_id"] for x in listing(status="completed", dataset="events")["items"]) \
        == sorted(ids["events"])
    assert sorted(x["batch_id"] for x in listing(status="completed", dataset="judgments")
                  ["items"]) == sorted(ids["ok"])
    assert sorted(x["batch_id"] for x in listing(source="s2")["items"]) == ids["bad"]
    assert listing(dataset="anything")["items"] == []

    # keyset pagination
    for limit in (1, 2, 4):
        seen, after, pages = [], None, 0
        while True:
            params = {"limit": limit}
            if after:
                params["cursor"] = after
            page = listing(**params)
            pages += 1
            assert len(page["items"]) <= limit
            seen += [x["batch_id"] for x in page["items"]]
            after = page["next_cursor"]
            if after is None:
                break
            assert pages < 20
        assert sorted(seen) == sorted(allids) and len(seen) == len(set(seen)), (limit, seen)
    # pagination with a filter
    seen, after = [], None
    while True:
        params = {"limit": 1, "dataset": "judgments"}
        if after:
            params["cursor"] = after
        page = listing(**params)
        seen += [x["batch_id"] for x in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert sorted(seen) == sorted(ids["ok"] + ids["bad"])
    assert_error(server.get("/api/v1/batches", params={"limit": "0"}), 400, "INVALID_PARAMETER")


# ---------------------------------------------------------------- the 202 answer

def test_upload_answer(make_server):
    server = make_server(extra_yaml="batches: {workers: 0}\n")
    data, _, _ = j_file(50, eol=b"\r\n")
    r = upload(server, "judgments", data, params={"filename": "a b.csv"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"batch_id", "status", "bytes", "sha256"}, body
    assert body["status"] == "uploaded"
    assert body["bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    bid = body["batch_id"]
    assert r.headers["Location"] == f"/api/v1/batches/{bid}"
    b = server.get(r.headers["Location"]).json()
    assert (b["bytes"], b["sha256"], b["status"], b["dataset"]) == \
        (len(data), body["sha256"], "uploaded", "judgments")
    assert b["filename"] == "a b.csv"
    assert b["attempts"] == 0
    assert server.batch_file(bid) == data
    # an empty file is an upload too
    r = upload(server, "judgments", b"")
    assert r.status_code == 202, r.text
    assert r.json()["bytes"] == 0
    assert r.json()["sha256"] == hashlib.sha256(b"").hexdigest()
    assert server.batch_file(r.json()["batch_id"]) == b""


# ---------------------------------------------------------------- request errors

def test_request_errors(server):
    assert_error(upload(server, "nope", b"a\n1\n"), 404, "DATASET_NOT_FOUND")
    assert_error(upload(server, "judgments", b"a\n1\n", ctype="application/json"), 415,
                 "UNSUPPORTED_MEDIA_TYPE")
    assert_error(upload(server, "judgments", b"a\n1\n", ctype=None), 415,
                 "UNSUPPORTED_MEDIA_TYPE")
    for bad in ("abc", "101", "-1", "", "nan", "10%"):
        assert_error(upload(server, "judgments", b"case_number\n1\n",
                            params={"error_threshold_percent": bad}), 400, "INVALID_PARAMETER")
    # nothing was recorded, no file left behind
    assert server.get("/api/v1/batches").json()["items"] == []
    bdir = os.path.join(server.data_dir, "batches")
    assert not os.path.isdir(bdir) or os.listdir(bdir) == []

    unknown = "bat_00000000000000000000000000"
    assert_error(server.get(f"/api/v1/batches/{unknown}"), 404, "NOT_FOUND")
    assert_error(server.get(f"/api/v1/batches/{unknown}/errors"), 404, "NOT_FOUND")
    assert_error(server.post(f"/api/v1/batches/{unknown}/reset"), 404, "NOT_FOUND")
    assert_error(server.post(f"/api/v1/batches/{unknown}/reprocess"), 404, "NOT_FOUND")
    assert_error(server.post(f"/api/v1/batches/{unknown}/fail", json={"reason": "x"}), 404,
                 "NOT_FOUND")
    assert_error(server.delete(f"/api/v1/batches/{unknown}"), 404, "NOT_FOUND")
    assert_error(requests.patch(f"{server.url}/api/v1/batches/{unknown}",
                                json={"error_threshold_percent": 5}, timeout=30), 404, "NOT_FOUND")

    data, _, _ = j_file(3)
    bid = upload_ok(server, "judgments", data)
    for body in ({"error_threshold_percent": 101}, {"error_threshold_percent": -1},
                 {"error_threshold_percent": "5"}, {}):
        assert_error(requests.patch(f"{server.url}/api/v1/batches/{bid}", json=body, timeout=30),
                     400, "INVALID_PARAMETER")
    assert server.proc.poll() is None


# ---------------------------------------------------------------- kill -9 during inserting

def write_big(path, n, pad=0):
    """n valid judgments rows (CASE-0000001..), notes padded with pad extra characters."""
    extra = "x" * pad
    with open(path, "wb") as f:
        f.write(b"case_number,amount,filed_date,status,notes\n")
        step = 10000
        for start in range(1, n + 1, step):
            chunk = "".join(
                f"CASE-{i:07d},{i % 1000}.25,2024-0{1 + i % 9}-1{i % 10},"
                f"{('open', 'closed', 'pending')[i % 3]},note number {i} for the big file{extra}\n"
                for i in range(start, min(n, start + step - 1) + 1)).encode()
            f.write(chunk)
    return path


@pytest.mark.parametrize("n,pad", [(300_000, 0), (45_000, 1900)], ids=["300k", "45k-wide"])
def test_kill9_during_inserting(make_server, tmp_path, n, pad):
    """SIGKILL while the batch is `inserting`: none of its rows are visible; after a restart
    it is taken up again on its own and completes with every row stored once, attempts 2.
    The 45k-wide case stays under 50,000 records (one heartbeat interval) with wide rows so
    that `inserting` still lasts a while."""
    path = write_big(str(tmp_path / "big.csv"), n, pad)
    server = make_server()
    with reap_on_failure(server):
        with open(path, "rb") as f:
            bid = upload_ok(server, "judgments", f)
        seen = []
        deadline = time.time() + 120 * SLOW
        while time.time() < deadline:
            st = get_batch(server, bid)["status"]
            if not seen or seen[-1] != st:
                seen.append(st)
            if st in ("inserting",) + FINAL:
                break
            time.sleep(0.02)
        assert seen[-1] == "inserting", f"never saw inserting (statuses seen: {seen})"
        server.kill9()
        assert sql(server, "SELECT status FROM batches WHERE id = ?", (bid,)) == \
            [("inserting",)], "the kill came after the commit: make the file larger"
        assert batch_row_count(server, "judgments", bid) == 0, "rows of an unfinished batch visible"
        assert sql(server, "SELECT COUNT(*) FROM batch_errors WHERE batch_id = ?", (bid,)) == \
            [(0,)]

        server.start()
        b = wait_status(server, bid, timeout=60)
        assert b["status"] == "completed", b
        assert b["attempts"] == 2, b
        assert b["row_count_total"] == n and b["row_count_inserted"] == n, b
        assert sql(server, "SELECT COUNT(*), COUNT(DISTINCT case_number) FROM ds_judgments"
                   " WHERE _batch_id = ?", (bid,)) == [(n, n)]
        assert sql(server, "SELECT COUNT(*) FROM ds_judgments") == [(n,)]


def test_batch_over_50000_rows_completes(make_server, tmp_path):
    """A batch larger than one heartbeat interval of records (50,000) completes, and the
    server keeps taking other writes."""
    n = 60_000
    path = write_big(str(tmp_path / "mid.csv"), n)
    server = make_server()
    with reap_on_failure(server):
        with open(path, "rb") as f:
            bid = upload_ok(server, "judgments", f)
        b = wait_status(server, bid, timeout=30)
        assert b["status"] == "completed", b
        assert b["row_count_inserted"] == n
        assert batch_row_count(server, "judgments", bid) == n
        r = server.post_events("events", [{"id": 1, "name": "after"}], ctype="application/json",
                               timeout=10)
        assert r.status_code == 200, r.text


# ---------------------------------------------------------------- streaming, bounded memory

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_streamed_upload_bounded_memory(make_server):
    target = 1_500_000_000
    server = make_server(extra_yaml="batches: {workers: 0}\nhttp: {request_timeout: 20m}\n")
    pid = server.proc.pid
    base_kb = rss_kb(pid)
    samples = []
    stop = threading.Event()

    def monitor():
        while not stop.is_set():
            try:
                samples.append(rss_kb(pid))
            except OSError:
                return
            stop.wait(0.2)

    sent = {"bytes": 0, "h": hashlib.sha256()}
    pad = "p" * 150

    def body():
        head = b"case_number,amount,filed_date,status,notes\n"
        sent["bytes"] += len(head)
        sent["h"].update(head)
        yield head
        i = 0
        while sent["bytes"] < target:
            chunk = "".join(f"CASE-{j:07d},{j % 997}.5,2024-03-01,open,{pad}\n"
                            for j in range(i, i + 4000)).encode()
            i += 4000
            sent["bytes"] += len(chunk)
            sent["h"].update(chunk)
            yield chunk

    t = threading.Thread(target=monitor, daemon=True)
    t.start()
    try:
        r = requests.post(f"{server.url}/api/v1/datasets/judgments/batches", data=body(),
                          headers={"Content-Type": "text/csv"}, timeout=900)
    finally:
        stop.set()
        t.join()
    assert r.status_code == 202, r.text[:500]
    body_ = r.json()
    bid = body_["batch_id"]
    try:
        assert body_["bytes"] == sent["bytes"]
        assert sent["bytes"] >= target
        assert body_["sha256"] == sent["h"].hexdigest()
        assert server.batch_file(bid, size_only=True) == sent["bytes"]
        assert len(samples) > 5
        print(f"\nstreamed {sent['bytes']} bytes; VmRSS base {base_kb} kB, "
              f"peak {max(samples)} kB, {len(samples)} samples")
        peak = max(samples)
        limit_kb = 80 * 1024
        if SANITIZED:   # ASan's shadow memory and quarantine: bound the growth instead
            assert peak - base_kb < limit_kb, (base_kb, peak)
        else:
            assert peak < limit_kb, f"peak VmRSS {peak} kB during a 1.5 GB upload (base {base_kb})"
        assert get_batch(server, bid)["status"] == "uploaded"
    finally:
        server.delete(f"/api/v1/batches/{bid}")


# ---------------------------------------------------------------- DLQ retry of batch rows

def test_dlq_retry_of_a_batch_row_uses_the_csv_header(make_server):
    """A rejected CSV record sits in the DLQ as its original bytes; once the schema is fixed,
    a retry reads it again with the batch file's header, stores it once, tagged with its
    batch, and a later reprocess of the batch still stores every row once."""
    import signal
    ds = JUDGMENTS.replace("enum: [open, closed, pending]", "enum: [open, closed]")
    server = make_server(datasets_yaml=ds)
    body = (b"status,case_number,amount,filed_date\n"
            b"open,CASE-0000001,10,2024-01-01\n"
            b"pending,CASE-0000002,\"1,5\",2024-01-01\n"
            b"pending,CASE-0000003,7,2024-01-01\n")
    bid = upload_ok(server, "judgments", body, {"error_threshold_percent": "90"})
    b = wait_status(server, bid)
    assert (b["status"], b["row_count_inserted"], b["row_count_invalid"]) == ("completed", 1, 2)
    items = server.get("/api/v1/dlq", params={"dataset": "judgments", "order": "asc"}).json()[
        "items"]
    assert [i["payload"] for i in items] == ['pending,CASE-0000002,"1,5",2024-01-01',
                                            "pending,CASE-0000003,7,2024-01-01"]
    server.write_config(datasets_yaml=JUDGMENTS)  # `pending` is allowed again
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "pending" not in json.dumps(server.get("/api/v1/datasets/judgments").json()):
        assert time.time() < deadline, "the reload did not apply"
        time.sleep(0.05)
    r = server.post("/api/v1/dlq/retry", json={"dataset": "judgments"})
    assert r.status_code == 200 and r.json() == {"matched": 2, "resolved": 1, "still_open": 1}
    left = server.get("/api/v1/dlq", params={"dataset": "judgments"}).json()["items"]
    assert len(left) == 1 and left[0]["errors"][0]["code"] == "INVALID_TYPE"
    rows = sql(server, "SELECT case_number, status, _batch_id FROM ds_judgments ORDER BY case_number")
    assert rows == [("CASE-0000001", "open", bid), ("CASE-0000003", "pending", bid)]
    # Reprocessing the batch replaces all of its rows, the retried one included.
    assert server.post(f"/api/v1/batches/{bid}/reprocess").status_code == 200
    b = wait_status(server, bid, timeout=60)
    assert (b["status"], b["row_count_inserted"], b["row_count_invalid"]) == ("completed", 2, 1)
    rows = sql(server, "SELECT case_number FROM ds_judgments ORDER BY case_number")
    assert rows == [("CASE-0000001",), ("CASE-0000003",)]


# ---------------------------------------------------------------- finding a batch's rows

def test_batch_rows_found_after_events_retries_and_upserts(make_server):
    """A batch's rows are found again (reprocess, delete) however they were stored: rows
    pushed as events in between are never touched, a DLQ-retried row stored later is, and
    so are rows an upsert moved to the batch, also after the dataset stops upserting."""
    import signal
    from conftest import JUDGMENTS as J
    assert "on_duplicate: upsert" in J
    narrow = J.replace("enum: [open, closed, pending]", "enum: [open, closed]")
    server = make_server(datasets_yaml=narrow)

    def reload(ds_yaml, check):
        server.write_config(datasets_yaml=ds_yaml)
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while not check():
            assert time.time() < deadline, "the reload did not apply"
            time.sleep(0.05)

    def post_event(case):
        r = server.post("/api/v1/datasets/judgments/events",
                        json={"case_number": case, "amount": 1, "filed_date": "2024-01-01",
                              "status": "open"})
        assert r.status_code in (200, 201, 202), r.text

    post_event("CASE-0000100")
    body = b"case_number,amount,filed_date,status\n" + b"".join(
        b"CASE-%07d,1,2024-01-01,%s\n" % (i, b"pending" if i == 3 else b"open")
        for i in range(1, 6))
    bid = upload_ok(server, "judgments", body, {"error_threshold_percent": "50"})
    assert wait_status(server, bid)["row_count_inserted"] == 4
    post_event("CASE-0000101")
    reload(J,
           lambda: "pending" in json.dumps(server.get("/api/v1/datasets/judgments").json()))
    r = server.post("/api/v1/dlq/retry", json={"dataset": "judgments"})
    assert r.json()["resolved"] == 1, r.text
    post_event("CASE-0000102")
    assert sql(server, "SELECT COUNT(*) FROM ds_judgments WHERE _batch_id = ?", (bid,)) == [(5,)]
    # delete: the batch's five rows go, the three events stay
    r = server.delete(f"/api/v1/batches/{bid}", params={"dry_run": "true"})
    assert r.status_code == 200 and r.json()["rows"] == 5, r.text
    assert server.delete(f"/api/v1/batches/{bid}").status_code == 200
    assert sql(server, "SELECT case_number FROM ds_judgments ORDER BY 1") == \
        [("CASE-0000100",), ("CASE-0000101",), ("CASE-0000102",)]

    # upserts: the second batch takes over row 2; after the switch to `reject` the rows
    # are still found. SQLite finds a batch's rows by rowid range and indexes _batch_id
    # only while the dataset upserts: the switch drops the index. PostgreSQL finds them
    # by _batch_id in every dataset: its index stays.
    b1 = upload_ok(server, "upserts", b"id,v\n1,a\n2,b\n3,c\n")
    assert wait_status(server, b1)["status"] == "completed"
    b2 = upload_ok(server, "upserts", b"id,v\n2,B\n4,D\n")
    assert wait_status(server, b2)["status"] == "completed"
    reload(J.replace("on_duplicate: upsert", "on_duplicate: reject"),
           lambda: server.get("/api/v1/datasets/upserts").json().get("on_duplicate") == "reject")
    with server.db() as db:
        assert db.index_exists("ds_upserts_batch") == (STORE == "postgres")
    assert server.delete(f"/api/v1/batches/{b2}").status_code == 200
    assert sql(server, "SELECT id, v FROM ds_upserts ORDER BY id") == [(1, "a"), (3, "c")]
    assert server.post(f"/api/v1/batches/{b1}/reprocess").status_code == 200
    b = wait_status(server, b1)  # 1 and 3 are its own rows, replaced; 2 is b1's again
    assert (b["row_count_inserted"], b["row_count_duplicate"]) == (3, 0), b
    assert sql(server, "SELECT id, v FROM ds_upserts ORDER BY id") == \
        [(1, "a"), (2, "b"), (3, "c")]


# ---------------------------------------------------------------- streamed row errors

def test_errors_download_is_streamed_in_row_order(server):
    """Thousands of row errors (more than one page) come as a chunked stream, in row order
    with every error of a row, as JSON and as CSV; an HTTP/1.0 client gets the same body
    ended by the close; a client that leaves mid-download does not hurt the server."""
    import csv as csvmod
    import io
    import socket
    n = 3000  # every row: a bad case number and a negative amount -> 6000 errors
    body = b"case_number,amount,filed_date\n" + b"".join(
        b"X-%d,-%d,2024-01-01\n" % (i, i) for i in range(1, n + 1))
    bid = upload_ok(server, "judgments", body, {"error_threshold_percent": "100"})
    b = wait_status(server, bid)
    assert (b["status"], b["row_count_invalid"]) == ("completed", n), b

    r = requests.get(f"{server.url}/api/v1/batches/{bid}/errors", timeout=60)
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.headers
    items = r.json()["items"]
    assert len(items) == 2 * n
    assert [e["row_number"] for e in items] == [i for i in range(1, n + 1) for _ in (0, 1)]
    assert {(e["error_code"], e["field"]) for e in items[:2]} == \
        {("PATTERN_MISMATCH", "case_number"), ("OUT_OF_RANGE", "amount")}, items[:2]
    assert all(TIME_RE.match(e["created_at"]) for e in items[:10])

    r = requests.get(f"{server.url}/api/v1/batches/{bid}/errors",
                     headers={"Accept": "text/csv"}, timeout=60)
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csvmod.reader(io.StringIO(r.text)))
    assert rows[0] == ["batch_id", "row_number", "error_code", "field", "error_message",
                       "created_at"]
    assert len(rows) == 2 * n + 1
    assert [int(x[1]) for x in rows[1:]] == [e["row_number"] for e in items]
    assert {x[0] for x in rows[1:]} == {bid}

    # HTTP/1.0: no chunked coding, the end of the connection ends the body
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"GET /api/v1/batches/{bid}/errors?format=csv HTTP/1.0\r\n\r\n".encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head, head
    assert payload.decode() == r.text

    # a client that reads the headers and leaves
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(f"GET /api/v1/batches/{bid}/errors HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.recv(100)
    assert server.get("/healthz").status_code == 200
    assert len(errors_json(server, bid)) == 2 * n


# ---------------------------------------------------------------- counts that add up

def counts(b):
    # (BATCH_KEYS checks that row_count_discarded is there)
    return (b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"],
            b["row_count_duplicate"], b.get("row_count_discarded", 0))


def assert_adds_up(b):
    t, i, v, d, x = counts(b)
    assert t == i + v + d + x, b


def test_counts_add_up_in_every_state(make_server):
    """total = inserted + invalid + duplicate + discarded, where discarded is the rows
    without an error of a failed batch (nothing of it is stored), 0 in every other state."""
    server = make_server(extra_yaml="batches: {workers: 1}")
    head = b"case_number,amount,filed_date\n"
    # failed over its threshold: 1 of 2 rows invalid; the other is discarded
    failed = wait_status(server, upload_ok(server, "judgments", head
                                           + b"CASE-0000001,1,2024-01-01\n"
                                           b"CASE-0000002,-1,2024-01-01\n"))
    assert failed["status"] == "failed", failed
    assert_adds_up(failed)
    assert counts(failed) == (2, 0, 1, 0, 1), failed
    assert batch_row_count(server, "judgments", failed["batch_id"]) == 0
    # completed, with an invalid row and a refused duplicate of a stored key
    r = server.post_events("judgments", '{"case_number": "CASE-0000009", "amount": 1,'
                                        ' "filed_date": "2024-01-01"}')
    assert r.status_code == 200, r.text
    done = wait_status(server, upload_ok(server, "judgments", head
                                         + b"CASE-0000003,1,2024-01-01\n"
                                         b"CASE-0000004,-1,2024-01-01\n"
                                         b"CASE-0000009,1,2024-01-01\n",
                                         params={"error_threshold_percent": "50"}))
    assert done["status"] == "completed", done
    assert counts(done) == (3, 1, 1, 1, 0), done
    # failed at staging: no row was read
    staged = wait_status(server, upload_ok(server, "judgments",
                                           b"case_number,amount\nCASE-0000005,1\n"))
    assert staged["status"] == "failed" and "filed_date" in staged["rejection_reason"], staged
    assert counts(staged) == (0, 0, 0, 0, 0), staged
    # a failed batch reset and processed again, with a threshold it now meets
    bid = failed["batch_id"]
    r = requests.patch(f"{server.url}/api/v1/batches/{bid}",
                       json={"error_threshold_percent": 60}, timeout=30)
    assert r.status_code == 200, r.text
    assert server.post(f"/api/v1/batches/{bid}/reset").status_code == 200
    again = wait_status(server, bid)
    assert again["status"] == "completed", again
    assert counts(again) == (2, 1, 1, 0, 0), again
    # re-ingested: the completed batch again, the same counts (its rows are replaced)
    assert server.post(f"/api/v1/batches/{done['batch_id']}/reprocess").status_code == 200
    redone = wait_status(server, done["batch_id"])
    assert counts(redone) == counts(done), redone
    for b in (failed, done, staged, again, redone):
        assert_adds_up(b)
    # the list answers the same counts
    items = server.get("/api/v1/batches", params={"limit": 100}).json()["items"]
    assert all(counts(x) == counts(get_batch(server, x["batch_id"])) for x in items), items
    for x in items:
        assert_adds_up(x)


def test_reset_batch_counts_nothing_until_it_finishes_again(make_server):
    """Right after a reset the batch is back to `uploaded` with every count 0 (reset with
    no worker running, so nothing takes it up again)."""
    server = make_server(extra_yaml="batches: {workers: 1}")
    bid = upload_ok(server, "judgments", b"case_number,amount,filed_date\n"
                                         b"CASE-0000001,1,2024-01-01\n"
                                         b"CASE-0000002,-1,2024-01-01\n")
    b = wait_status(server, bid)
    assert counts(b) == (2, 0, 1, 0, 1), b
    server.stop()
    server.write_config(extra_yaml="batches: {workers: 0}")
    server.start()
    assert server.post(f"/api/v1/batches/{bid}/reset").status_code == 200
    b = get_batch(server, bid)
    assert b["status"] == "uploaded", b
    assert counts(b) == (0, 0, 0, 0, 0), b


# ---------------------------------------------------------------- the original file

def test_download_file_with_its_sha256(make_server, tmp_path):
    import subprocess
    from conftest import BIN
    server = make_server(extra_yaml="batches: {workers: 0}\n")
    data = b"case_number,amount,filed_date\n" + b"".join(
        b"CASE-%07d,%d.5,2024-01-02\r\n" % (i, i) for i in range(150_000))  # ~5 MB, many pieces
    assert len(data) > 4 * 1024 * 1024
    bid = upload_ok(server, "judgments", data, {"filename": 'r\u00e9sum\u00e9 "q".csv'})
    r = server.get(f"/api/v1/batches/{bid}/file", stream=True)
    assert r.status_code == 200, r.text
    got = r.raw.read(decode_content=False)
    assert got == data
    digest = hashlib.sha256(data)
    assert r.headers["Repr-Digest"] == "sha-256=:%s:" % base64.b64encode(digest.digest()).decode()
    assert r.headers["ETag"] == '"%s"' % digest.hexdigest()
    assert r.headers["Content-Type"] == "text/csv"
    cd = r.headers["Content-Disposition"]
    assert cd.startswith('attachment; filename="r__sum__ _q_.csv"'), cd
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22q%22.csv" in cd, cd
    assert get_batch(server, bid)["sha256"] == digest.hexdigest()

    out = tmp_path / "copy.csv"
    p = subprocess.run([BIN, "batch", "download", bid, "-o", str(out), "--url", server.url],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert json.loads(p.stdout) == {"batch_id": bid, "file": str(out), "bytes": len(data),
                                    "sha256": digest.hexdigest(), "verified": True}
    assert out.read_bytes() == data
    p = subprocess.run([BIN, "batch", "download", bid, "--url", server.url], capture_output=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout == data, p.stderr

    # the Content-Type of the upload: the body's, or the multipart file part's
    small = b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-02\n"
    r = upload(server, "judgments", small, ctype="application/octet-stream")
    assert r.status_code == 202, r.text
    b2 = r.json()["batch_id"]
    r = server.get(f"/api/v1/batches/{b2}/file")
    assert r.headers["Content-Type"] == "application/octet-stream" and r.content == small
    r = requests.post(f"{server.url}/api/v1/datasets/judgments/batches", timeout=30,
                      files={"file": ("x.csv", small, "application/vnd.ms-excel")})
    assert r.status_code == 202, r.text
    r = server.get(f"/api/v1/batches/{r.json()['batch_id']}/file")
    assert r.headers["Content-Type"] == "application/vnd.ms-excel" and r.content == small
    assert r.headers["Content-Disposition"] == 'attachment; filename="x.csv"'

    assert_error(server.get("/api/v1/batches/bat_nope/file"), 404, "NOT_FOUND")
    p = subprocess.run([BIN, "batch", "download", "bat_nope", "-o", str(tmp_path / "n.csv"),
                        "--url", server.url], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "NOT_FOUND" in p.stdout, (p.stdout, p.stderr)
    assert not (tmp_path / "n.csv").exists() and not (tmp_path / "n.csv.part").exists()


@pytest.mark.sqlite_only("changes the kept file on disk")
def test_download_of_a_damaged_file_is_cut_short(make_server, tmp_path):
    import subprocess
    from conftest import BIN
    server = make_server(extra_yaml="batches: {workers: 0}\n")
    data = b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-02\n"
    bid = upload_ok(server, "judgments", data)
    path = os.path.join(server.data_dir, "batches", bid + ".csv")
    with open(path, "r+b") as f:
        f.write(b"X")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        server.get(f"/api/v1/batches/{bid}/file").content
    out = tmp_path / "d.csv"
    p = subprocess.run([BIN, "batch", "download", bid, "-o", str(out), "--url", server.url],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert not out.exists() and not (tmp_path / "d.csv.part").exists()
