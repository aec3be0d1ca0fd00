"""The dead-letter queue: listing with filters and keyset pagination, one entry,
binary payloads, retry (single, bulk, concurrent) after a schema reload, drop, and
the `sluice dlq` CLI (docs/api-contract-draft.md, "DLQ" and "Lifecycle")."""
import base64
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN, JUDGMENTS

ITEM_KEYS = {"id", "dataset", "ingest_id", "source", "row", "payload", "payload_base64",
             "errors", "received_at", "updated_at", "attempts", "status"}

# judgments (from the default fixture config) plus a dataset without a key.
DLQ_DATASETS = JUDGMENTS + """
  - name: readings
    schema:
      type: object
      required: [sensor, value]
      properties:
        sensor: {type: string}
        value: {type: number, minimum: 0}
"""
_AMOUNT = "amount:      {type: number, minimum: 0}"
_VALUE = "value: {type: number, minimum: 0}"
assert _AMOUNT in DLQ_DATASETS and _VALUE in DLQ_DATASETS, "conftest JUDGMENTS changed"
# The same datasets with the minimum constraints removed (a compatible change).
RELAXED = DLQ_DATASETS.replace(_AMOUNT, "amount:      {type: number}").replace(
    _VALUE, "value: {type: number}")


# ---------------------------------------------------------------- helpers

def jrow(n, **kw):
    row = {"case_number": f"CASE-{n:07d}", "amount": 10.5, "filed_date": "2023-01-15"}
    row.update(kw)
    return row


def ingest(server, dataset, rows, **kw):
    r = server.post_events(dataset, json.dumps(rows), ctype="application/json", **kw)
    assert r.status_code in (200, 207, 422), r.text
    return r.json()


def db_rows(server, dataset):
    with server.db() as db:
        return db.dataset_rows(dataset)


def list_page(server, **params):
    r = server.get("/api/v1/dlq", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"items", "next_cursor"}, body
    return body


def dlq_all(server, **params):
    """Every item matching params, following `next_cursor`; checks no item comes twice."""
    params.setdefault("limit", 1000)
    params.setdefault("order", "asc")
    items, after, seen = [], None, set()
    for _ in range(1000):
        p = dict(params)
        if after is not None:
            p["cursor"] = after
        body = list_page(server, **p)
        assert len(body["items"]) <= int(params["limit"])
        for it in body["items"]:
            assert it["id"] not in seen, f"item {it['id']} returned twice"
            seen.add(it["id"])
        items += body["items"]
        after = body["next_cursor"]
        if after is None:
            return items
    raise AssertionError("pagination never ended")


def key_of(item):
    """The case_number / sensor of the row an item holds."""
    row = json.loads(item["payload"])
    return row.get("case_number") or row.get("sensor")


def by_key(items):
    return {key_of(i): i for i in items}


def get_item(server, id_):
    r = server.get(f"/api/v1/dlq/{id_}")
    assert r.status_code == 200, r.text
    return r.json()


def retry(server, id_):
    return server.post(f"/api/v1/dlq/{id_}/retry")


def assert_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"]["code"] == code, r.text


def reload_config(server, datasets_yaml, timeout=15):
    """Write a new config, SIGHUP, and wait until the relaxed schema is in force."""
    server.write_config(datasets_yaml=datasets_yaml)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = server.get("/api/v1/datasets/judgments")
        assert r.status_code == 200, r.text
        if "minimum" not in r.json()["schema"]["properties"]["amount"]:
            return
        time.sleep(0.05)
    raise AssertionError("reload not applied:\n" + server.logs()[-3000:])


@pytest.fixture
def dlq_server(make_server):
    return make_server(datasets_yaml=DLQ_DATASETS)


# ---------------------------------------------------------------- list / show

def test_item_shape_and_show(server):
    b = ingest(server, "judgments", [jrow(1), jrow(2, amount=-3, status="nope")],
               headers={"X-Sluice-Source": "crm"})
    items = dlq_all(server)
    assert len(items) == 1
    it = items[0]
    assert set(it) == ITEM_KEYS, it
    assert isinstance(it["id"], int)
    assert it["dataset"] == "judgments"
    assert it["ingest_id"] == b["ingest_id"]
    assert it["source"] == "crm"
    assert it["row"] == 2
    assert json.loads(it["payload"]) == jrow(2, amount=-3, status="nope")
    assert it["payload_base64"] is False
    assert it["status"] == "open"
    assert isinstance(it["attempts"], int)
    assert isinstance(it["received_at"], str) and isinstance(it["updated_at"], str)
    for e in it["errors"]:
        assert set(e) == {"field", "code", "message"}, e
    assert sorted((e["field"], e["code"]) for e in it["errors"]) == \
        [("amount", "OUT_OF_RANGE"), ("status", "NOT_IN_ENUM")]

    assert get_item(server, it["id"]) == it
    assert_error(server.get("/api/v1/dlq/987654321"), 404, "NOT_FOUND")


def test_list_filters(dlq_server):
    s = dlq_server
    ingest(s, "judgments", [jrow(1, amount=-1),                 # A: OUT_OF_RANGE
                            jrow(2, status="x"),                 # B: NOT_IN_ENUM
                            jrow(3, amount=-1, status="x"),      # C: both
                            {"case_number": "CASE-0000004"},     # D: MISSING_REQUIRED_FIELD
                            jrow(9)])                            # stored
    ingest(s, "readings", [{"sensor": "E", "value": -1},        # E: OUT_OF_RANGE
                           {"sensor": "F", "value": "x"}])       # F: INVALID_TYPE
    A, B, C, D = (f"CASE-000000{i}" for i in range(1, 5))

    def keys(**params):
        return sorted(key_of(i) for i in dlq_all(s, **params))

    everything = dlq_all(s)
    assert len(everything) == 6
    ids = [i["id"] for i in everything]
    assert ids == sorted(ids), "oldest first"
    assert keys() == sorted([A, B, C, D, "E", "F"])
    assert keys(dataset="judgments") == [A, B, C, D]
    assert keys(dataset="readings") == ["E", "F"]
    assert keys(error_code="OUT_OF_RANGE") == sorted([A, C, "E"])
    assert keys(dataset="judgments", error_code="OUT_OF_RANGE") == [A, C]
    assert keys(error_code="NOT_IN_ENUM") == [B, C]
    assert keys(error_code="INVALID_TYPE") == ["F"]
    assert keys(error_code="TOO_LONG") == []
    assert keys(dataset="nosuchdataset") == []
    assert keys(status="open") == keys()
    assert keys(status="resolved") == []
    assert keys(status="dropped") == []
    assert keys(status="all") == keys()
    for it in dlq_all(s, error_code="OUT_OF_RANGE"):
        assert "OUT_OF_RANGE" in [e["code"] for e in it["errors"]]

    b_id = by_key(everything)[B]["id"]
    r = s.delete(f"/api/v1/dlq/{b_id}")
    assert r.status_code == 200, r.text
    assert keys(status="dropped") == [B]
    assert keys() == sorted([A, C, D, "E", "F"])
    assert keys(status="all") == sorted([A, B, C, D, "E", "F"])
    assert keys(error_code="NOT_IN_ENUM") == [C]
    assert keys(error_code="NOT_IN_ENUM", status="all") == [B, C]
    assert keys(dataset="judgments", status="dropped", error_code="NOT_IN_ENUM") == [B]


@pytest.mark.parametrize("params", [{"status": "bogus"}, {"limit": "abc"}, {"limit": "-1"}])
def test_list_bad_parameter(server, params):
    assert_error(server.get("/api/v1/dlq", params=params), 400, "INVALID_PARAMETER")


def test_keyset_pagination(dlq_server):
    s = dlq_server
    n = 0
    for batch in range(5):
        ingest(s, "judgments", [jrow(n + i, amount=-1) for i in range(5)])
        n += 5
        ingest(s, "readings", [{"sensor": f"s{batch}-{i}", "value": -1} for i in range(2)])
    full = dlq_all(s, limit=1000)
    assert len(full) == 35

    for limit, params in ((7, {"dataset": "judgments"}), (10, {}), (1, {"dataset": "readings"}),
                          (25, {"dataset": "judgments"})):
        pages, after = [], None
        while True:
            p = dict(params, limit=limit, order="asc")
            if after is not None:
                p["cursor"] = after
            body = list_page(s, **p)
            assert len(body["items"]) <= limit
            pages.append(body["items"])
            after = body["next_cursor"]
            if after is None:
                break
            assert len(pages) < 100
        got = [i["id"] for page in pages for i in page]
        assert len(got) == len(set(got)), f"an item came twice (limit={limit}, {params})"
        want = [i["id"] for i in full
                if "dataset" not in params or i["dataset"] == params["dataset"]]
        assert got == want, (limit, params)
        assert all(len(p) == limit for p in pages[:-1]), (limit, params)

    # a cursor stays valid while entries are added: paging on gives the rest, then the new ones
    first = list_page(s, dataset="judgments", limit=7, order="asc")
    assert first["next_cursor"] is not None
    ingest(s, "judgments", [jrow(100 + i, amount=-1) for i in range(3)])
    rest = dlq_all(s, dataset="judgments", limit=7, cursor=first["next_cursor"])
    got = [i["id"] for i in first["items"] + rest]
    assert len(got) == len(set(got)) == 28
    assert got == sorted(got)
    assert [key_of(i) for i in rest[-3:]] == [f"CASE-{100 + i:07d}" for i in range(3)]


def test_non_utf8_payload_is_base64(server):
    bad = b'{"case_number": "CASE-0000001", "notes": "\xff\xfe caf\xe9"}'
    ok_text = '{"case_number":"CASE-0000002",  "amount": -1, "filed_date":"2023-01-15", "notes": "café €"}'
    body = bad + b"\n" + ok_text.encode() + b"\n"
    r = server.post_events("judgments", body, ctype="application/x-ndjson")
    assert r.status_code == 422, r.text
    items = {i["row"]: i for i in dlq_all(server)}
    assert set(items) == {1, 2}
    assert items[1]["payload_base64"] is True
    assert base64.b64decode(items[1]["payload"]) == bad
    assert [e["code"] for e in items[1]["errors"]] == ["INVALID_UTF8"]
    assert items[2]["payload_base64"] is False
    assert items[2]["payload"] == ok_text
    assert get_item(server, items[1]["id"]) == items[1]


# ---------------------------------------------------------------- retry / drop

def test_retry_still_failing_increments_attempts(server):
    ingest(server, "judgments", [jrow(1, amount=-1)])
    it = dlq_all(server)[0]
    a0 = it["attempts"]
    for k in (1, 2):
        r = retry(server, it["id"])
        assert r.status_code == 200, r.text
        got = r.json()
        assert set(got) == ITEM_KEYS
        assert got["id"] == it["id"]
        assert got["status"] == "open"
        assert got["attempts"] == a0 + k
        assert [(e["field"], e["code"]) for e in got["errors"]] == [("amount", "OUT_OF_RANGE")]
        assert get_item(server, it["id"]) == got
    assert db_rows(server, "judgments") == []
    assert len(dlq_all(server)) == 1


def test_retry_after_schema_fix(dlq_server):
    s = dlq_server
    ingest(s, "judgments", [jrow(1, amount=-5),                   # fixed by the reload
                            jrow(2, amount=-5, status="weird"),   # still NOT_IN_ENUM after
                            jrow(3)])
    items = by_key(dlq_all(s))
    a, b = items["CASE-0000001"], items["CASE-0000002"]

    reload_config(s, RELAXED)

    r = retry(s, a["id"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"
    assert r.json()["id"] == a["id"]
    stored = [x for x in db_rows(s, "judgments") if x["case_number"] == "CASE-0000001"]
    assert len(stored) == 1 and stored[0]["amount"] == -5.0
    assert get_item(s, a["id"])["status"] == "resolved"
    assert a["id"] not in [i["id"] for i in dlq_all(s)]
    assert a["id"] in [i["id"] for i in dlq_all(s, status="resolved")]

    # a resolved entry can be neither retried nor dropped, and nothing is stored again
    assert_error(retry(s, a["id"]), 409, "CONFLICT")
    assert_error(s.delete(f"/api/v1/dlq/{a['id']}"), 409, "CONFLICT")
    assert len([x for x in db_rows(s, "judgments") if x["case_number"] == "CASE-0000001"]) == 1

    # still failing: open, attempts+1, and only the error that remains
    r = retry(s, b["id"])
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "open"
    assert got["attempts"] == b["attempts"] + 1
    assert [(e["field"], e["code"]) for e in got["errors"]] == [("status", "NOT_IN_ENUM")]
    assert get_item(s, b["id"])["errors"] == got["errors"]
    assert "CASE-0000002" not in [x["case_number"] for x in db_rows(s, "judgments")]


def test_retry_unknown_entry_404(server):
    assert_error(retry(server, 987654321), 404, "NOT_FOUND")
    assert_error(server.delete("/api/v1/dlq/987654321"), 404, "NOT_FOUND")


def test_drop(server):
    ingest(server, "judgments", [jrow(1, amount=-1), jrow(2, amount=-1)])
    it = dlq_all(server)[0]
    r = server.delete(f"/api/v1/dlq/{it['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "dropped"
    assert r.json()["id"] == it["id"]
    assert get_item(server, it["id"])["status"] == "dropped"
    assert [i["id"] for i in dlq_all(server, status="dropped")] == [it["id"]]
    assert it["id"] not in [i["id"] for i in dlq_all(server)]
    assert len(dlq_all(server, status="all")) == 2
    assert_error(retry(server, it["id"]), 409, "CONFLICT")
    assert db_rows(server, "judgments") == []


def test_bulk_retry_with_filters(dlq_server):
    s = dlq_server
    ingest(s, "judgments", [jrow(1, amount=-1), jrow(2, amount=-1), jrow(3, amount=-1),
                            jrow(4, amount=-1, status="x"), jrow(5, status="x")])
    ingest(s, "readings", [{"sensor": "r1", "value": -1}, {"sensor": "r2", "value": -2}])
    items = by_key(dlq_all(s))
    r = s.delete(f"/api/v1/dlq/{items['CASE-0000003']['id']}")
    assert r.status_code == 200, r.text

    reload_config(s, RELAXED)

    r = s.post("/api/v1/dlq/retry", json={"dataset": "judgments", "error_code": "OUT_OF_RANGE"})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 3, "resolved": 2, "still_open": 1}
    assert sorted(x["case_number"] for x in db_rows(s, "judgments")) == \
        ["CASE-0000001", "CASE-0000002"]
    assert get_item(s, items["CASE-0000003"]["id"])["status"] == "dropped"
    assert sorted(key_of(i) for i in dlq_all(s, dataset="readings")) == ["r1", "r2"]

    r = s.post("/api/v1/dlq/retry", json={"ids": [items["r1"]["id"]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 1, "resolved": 1, "still_open": 0}
    assert [x["sensor"] for x in db_rows(s, "readings")] == ["r1"]

    # no filter: every open entry (CASE-4, CASE-5 still invalid; r2 now valid)
    r = s.post("/api/v1/dlq/retry", json={})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 3, "resolved": 1, "still_open": 2}
    assert sorted(x["sensor"] for x in db_rows(s, "readings")) == ["r1", "r2"]
    assert sorted(key_of(i) for i in dlq_all(s)) == ["CASE-0000004", "CASE-0000005"]
    assert len(dlq_all(s, status="resolved")) == 4

    r = s.post("/api/v1/dlq/retry", json={"dataset": "readings"})
    assert r.status_code == 200, r.text
    assert r.json() == {"matched": 0, "resolved": 0, "still_open": 0}


def test_concurrent_retries_store_once(dlq_server):
    s = dlq_server
    n = 6
    ingest(s, "readings", [{"sensor": f"c{i}", "value": -1} for i in range(n)])
    items = dlq_all(s)
    assert len(items) == n
    reload_config(s, RELAXED)

    results = []
    lock = threading.Lock()

    def worker(id_, barrier):
        barrier.wait()
        r = retry(s, id_)
        with lock:
            results.append((id_, r.status_code, r.json()))

    for it in items:
        barrier = threading.Barrier(2)
        ts = [threading.Thread(target=worker, args=(it["id"], barrier)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
    assert len(results) == 2 * n
    for id_, status, body in results:
        assert status in (200, 409), (id_, status, body)
        if status == 200:
            assert body["status"] == "resolved", body
        else:
            assert body["error"]["code"] == "CONFLICT", body
    for it in items:
        assert [st for i, st, _ in results if i == it["id"]].count(200) >= 1
        assert get_item(s, it["id"])["status"] == "resolved"
    stored = sorted(x["sensor"] for x in db_rows(s, "readings"))
    assert stored == sorted(f"c{i}" for i in range(n)), "each row stored exactly once"


def test_concurrent_bulk_retries_store_once(dlq_server):
    s = dlq_server
    n = 30
    ingest(s, "readings", [{"sensor": f"b{i}", "value": -1} for i in range(n)])
    reload_config(s, RELAXED)
    barrier = threading.Barrier(3)
    out = []

    def worker():
        barrier.wait()
        r = s.post("/api/v1/dlq/retry", json={"dataset": "readings"})
        out.append((r.status_code, r.json()))

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert [st for st, _ in out] == [200, 200, 200], out
    assert sum(b["resolved"] for _, b in out) == n, out
    stored = sorted(x["sensor"] for x in db_rows(s, "readings"))
    assert stored == sorted(f"b{i}" for i in range(n))
    assert dlq_all(s) == []


# ---------------------------------------------------------------- CLI

def cli(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([BIN, "dlq", *map(str, args)], capture_output=True, timeout=30, env=e)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def cli_json(*args, env=None):
    rc, out, err = cli(*args, env=env)
    assert rc == 0, (args, rc, out, err)
    return json.loads(out)


def test_cli_list_show_retry_drop(server):
    ingest(server, "judgments", [jrow(1, amount=-1), jrow(2, status="x"), jrow(3, amount=-2)])
    ingest(server, "events", [{"id": "x"}])
    url = server.url
    api = dlq_all(server)

    out = cli_json("list", "--url", url)
    assert [i["id"] for i in out["items"]] == [i["id"] for i in reversed(api)]  # newest first
    assert out["next_cursor"] is None

    out = cli_json("list", "--dataset", "judgments", "--error-code", "OUT_OF_RANGE",
                   "--status", "open", "--limit", "1", "--order", "asc", "--url", url)
    assert len(out["items"]) == 1 and out["next_cursor"] is not None
    first = out["items"][0]
    assert key_of(first) == "CASE-0000001"
    out = cli_json("list", "--dataset", "judgments", "--error-code", "OUT_OF_RANGE",
                   "--limit", "1", "--order", "asc", "--cursor", out["next_cursor"],
                   "--url", url)
    assert [key_of(i) for i in out["items"]] == ["CASE-0000003"]

    out = cli_json("show", first["id"], "--url", url)
    assert out == get_item(server, first["id"])

    out = cli_json("retry", first["id"], "--url", url)
    assert out["id"] == first["id"] and out["status"] == "open"
    assert out["attempts"] == first["attempts"] + 1

    out = cli_json("drop", first["id"], "--url", url)
    assert out["id"] == first["id"] and out["status"] == "dropped"
    assert get_item(server, first["id"])["status"] == "dropped"

    out = cli_json("retry", "--all", "--dataset", "events", "--url", url)
    assert out == {"matched": 1, "resolved": 0, "still_open": 1}

    # SLUICE_URL instead of --url
    out = cli_json("list", "--status", "dropped", env={"SLUICE_URL": url})
    assert [i["id"] for i in out["items"]] == [first["id"]]


def test_cli_exit_codes(server):
    ingest(server, "judgments", [jrow(1, amount=-1)])
    it = dlq_all(server)[0]
    url = server.url
    rc, out, err = cli("show", 987654321, "--url", url)
    assert rc == 1, (rc, out, err)
    assert server.delete(f"/api/v1/dlq/{it['id']}").status_code == 200
    rc, out, err = cli("retry", it["id"], "--url", url)     # 409: not open
    assert rc == 1, (rc, out, err)
    for args in (("frobnicate", "--url", url), ("show", "--url", url),
                 ("retry", "--url", url), ("list", "--no-such-flag", "--url", url), ()):
        rc, out, err = cli(*args)
        assert rc == 2, (args, rc, out, err)


# ---------------------------------------------------------------- drop by filter

def statuses(server):
    return {i["id"]: i["status"] for i in dlq_all(server, status="all")}


def test_drop_by_filter(dlq_server):
    s = dlq_server
    ingest(s, "judgments", [jrow(i, amount=-1) for i in range(450)])  # OUT_OF_RANGE, > 2 pages
    ingest(s, "judgments", [jrow(1000 + i, status="x") for i in range(5)])  # NOT_IN_ENUM
    ingest(s, "readings", [{"sensor": f"s{i}", "value": -1} for i in range(3)])
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    ingest(s, "readings", [{"sensor": "late", "value": -1}])
    before = statuses(s)
    assert len(before) == 459 and set(before.values()) == {"open"}

    # no filter, a bad boolean, an unknown parameter: refused, nothing dropped
    assert_error(s.delete("/api/v1/dlq"), 400, "INVALID_PARAMETER")
    assert_error(s.delete("/api/v1/dlq", params={"dataset": "judgments", "dry_run": "yes"}), 400,
                 "INVALID_PARAMETER")
    assert_error(s.delete("/api/v1/dlq", params={"dataset": "judgments", "dryrun": "true"}), 400,
                 "UNKNOWN_PARAMETER")
    assert_error(s.delete("/api/v1/dlq", params={"since": "soon"}), 400, "INVALID_PARAMETER")
    assert statuses(s) == before

    # a dry run says what would go and changes nothing
    r = s.delete("/api/v1/dlq", params={"dataset": "judgments", "error_code": "OUT_OF_RANGE",
                                        "dry_run": "true"})
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["dry_run"] is True and dry["matched"] == 450 and dry["dropped"] == 0, dry
    oor = sorted(i for i, st in before.items() if i <= max(before) - 9)  # the first 450 ids
    assert dry["sample_ids"] == oor[:10], dry
    assert statuses(s) == before

    r = s.delete("/api/v1/dlq", params={"dataset": "judgments", "error_code": "OUT_OF_RANGE"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done == {"dry_run": False, "matched": 450, "dropped": 450,
                    "sample_ids": dry["sample_ids"]}, done
    after = statuses(s)
    assert [i for i, st in after.items() if st == "dropped"] == oor
    assert sum(st == "open" for st in after.values()) == 9

    # the time range: only the readings received before the cut
    r = s.delete("/api/v1/dlq", params={"dataset": "readings", "until": cut})
    assert r.status_code == 200 and r.json()["dropped"] == 3, r.text
    open_left = [i for i in dlq_all(s, dataset="readings")]
    assert [json.loads(i["payload"])["sensor"] for i in open_left] == ["late"]
    # dropping again finds nothing
    r = s.delete("/api/v1/dlq", params={"dataset": "readings", "until": cut})
    assert r.json() == {"dry_run": False, "matched": 0, "dropped": 0, "sample_ids": []}, r.text

    # the CLI, then all=true for what is left
    out = cli_json("drop", "--dataset", "judgments", "--dry-run", "--url", s.url)
    assert out["dry_run"] is True and out["matched"] == 5
    assert cli("drop", "--since", "-1h", "--url", s.url)[0] == 2  # a bad time: a usage error
    out = cli_json("drop", "--all", "--url", s.url)
    assert out["dropped"] == 6
    assert set(statuses(s).values()) == {"dropped"}
