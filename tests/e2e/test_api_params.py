"""Query parameters (docs/api.md, "Query parameters"): every route refuses a parameter it
does not declare, booleans are exactly true/false/1/0, enumerated filters refuse other
values, times are epoch ms, RFC 3339 or a duration before now, and a refused request does
nothing. Lists are newest first with order=asc|desc and one opaque cursor type."""
import json
import os
import re
import time

import pytest
import requests

from conftest import ROOT


def routes():
    """(method, pattern) of every row of the route table, src/http/routes.c."""
    with open(os.path.join(ROOT, "src", "http", "routes.c")) as f:
        text = f.read()
    table = text[text.index("http_routes[] = {"):text.index("};")]
    found = re.findall(r'\{"([A-Z]+)", "(/[^"]*)"', table)
    assert len(found) > 30, found
    return found


def error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


def upload(server, name, body=b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-02\n"):
    r = requests.post(f"{server.url}/api/v1/datasets/judgments/batches", data=body,
                      params={"filename": name}, headers={"Content-Type": "text/csv"},
                      timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["batch_id"]


def batch_ids(server, **params):
    r = server.get("/api/v1/batches", params=dict(params, limit=1000))
    assert r.status_code == 200, r.text
    return [b["batch_id"] for b in r.json()["items"]]


@pytest.mark.parametrize("method,pattern", routes())
def test_every_route_refuses_an_unknown_parameter(server, method, pattern):
    path = re.sub(r"\{[a-z]+\}", "1", pattern)
    r = requests.request(method, f"{server.url}{path}?no_such_param=1", timeout=30,
                         headers={"Content-Type": "text/csv"} if method == "POST" else {},
                         data=b"" if method in ("POST", "PATCH") else None)
    msg = error(r, 400, "UNKNOWN_PARAMETER")
    assert "'no_such_param'" in msg, msg


def test_unknown_parameter_does_nothing(server):
    bid = upload(server, "keep.csv")
    error(server.delete(f"/api/v1/batches/{bid}", params={"dryrun": "true"}), 400,
          "UNKNOWN_PARAMETER")
    error(server.delete("/api/v1/batches", params={"filename_contains": "keep", "dry-run": "1"}),
          400, "UNKNOWN_PARAMETER")
    assert bid in batch_ids(server)
    # the message lists what the route takes
    msg = error(server.get("/api/v1/batches", params={"after": "x"}), 400, "UNKNOWN_PARAMETER")
    assert "cursor" in msg and "created_after" in msg, msg


@pytest.mark.parametrize("value", ["maybe", "yes", "no", "TRUE", "True", "on", "", "2", " 1"])
def test_bad_dry_run_deletes_nothing(server, value):
    """The operator's report: dry_run=maybe deleted two batches."""
    ids = [upload(server, "test-a.csv"), upload(server, "test-b.csv")]
    msg = error(server.delete("/api/v1/batches",
                              params={"dry_run": value, "filename_contains": "test"}),
                400, "INVALID_PARAMETER")
    assert "dry_run" in msg and "true, false, 1 or 0" in msg, msg
    msg = error(server.delete(f"/api/v1/batches/{ids[0]}", params={"dry_run": value}), 400,
                "INVALID_PARAMETER")
    assert "dry_run" in msg, msg
    assert sorted(batch_ids(server)) == sorted(ids)


@pytest.fixture
def idle(make_server):
    """A server whose batches stay `uploaded` (no workers), so that they can be deleted."""
    return make_server(extra_yaml="batches: {workers: 0}\n")


@pytest.mark.parametrize("value", ["true", "1", "false", "0"])
def test_good_booleans(idle, value):
    server = idle
    ids = [upload(server, "test-a.csv"), upload(server, "test-b.csv")]
    want_dry = value in ("true", "1")
    r = server.delete("/api/v1/batches", params={"dry_run": value, "filename_contains": "test"})
    assert r.status_code == 200, r.text
    left = batch_ids(server)
    assert sorted(left) == (sorted(ids) if want_dry else []), (value, r.text)


def test_a_parameter_given_twice(server):
    bid = upload(server, "twice.csv")
    msg = error(server.delete(f"{'/api/v1/batches/' + bid}?dry_run=true&dry_run=false"), 400,
                "INVALID_PARAMETER")
    assert "dry_run" in msg and "more than once" in msg, msg
    assert bid in batch_ids(server)


@pytest.mark.parametrize("path,param,value", [
    ("/api/v1/batches", "status", "weird"),
    ("/api/v1/batches", "status", "COMPLETED"),
    ("/api/v1/batches", "order", "newest"),
    ("/api/v1/dlq", "status", "bogus"),
    ("/api/v1/dlq", "order", "DESC"),
    ("/api/v1/alerts", "state", "open"),
    ("/api/v1/audit", "method", "post"),
    ("/api/v1/batches/x/errors", "format", "xml"),
])
def test_bad_enum_values(server, path, param, value):
    msg = error(server.get(path, params={param: value}), 400, "INVALID_PARAMETER")
    assert msg.startswith(param + " must be one of"), msg
    assert f"'{value}'" in msg, msg


@pytest.mark.parametrize("path,param,value", [
    ("/api/v1/batches", "limit", "0"), ("/api/v1/batches", "limit", "1001"),
    ("/api/v1/batches", "limit", "ten"), ("/api/v1/dlq", "limit", "-1"),
    ("/api/v1/stats/hourly", "hours", "0"), ("/api/v1/stats/monthly", "months", "121"),
    ("/api/v1/audit", "status", "99"), ("/api/v1/errors/distribution", "hours", "1e3"),
])
def test_bad_integers(server, path, param, value):
    msg = error(server.get(path, params={param: value}), 400, "INVALID_PARAMETER")
    assert msg.startswith(param + " must be an integer"), msg


def test_status_filter_still_works(server):
    bid = upload(server, "s.csv")
    deadline = time.time() + 30
    while server.get(f"/api/v1/batches/{bid}").json()["status"] != "completed":
        assert time.time() < deadline
        time.sleep(0.05)
    assert batch_ids(server, status="completed") == [bid]
    assert batch_ids(server, status="failed") == []


# ---------------------------------------------------------------- times

def test_times_in_every_form(server):
    before = upload(server, "before.csv")
    time.sleep(0.05)
    cut_ms = int(time.time() * 1000)
    time.sleep(0.05)
    after = upload(server, "after.csv")
    cut = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut_ms // 1000)) + \
        f".{cut_ms % 1000:03d}Z"
    assert batch_ids(server, created_after=cut_ms) == [after]
    assert batch_ids(server, created_after=cut) == [after]
    # the same instant with an offset (+ encoded, and + left as is, which arrives as a space)
    t = time.gmtime(cut_ms // 1000 + 5 * 3600 + 30 * 60)
    local = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{cut_ms % 1000:03d}+05:30"
    assert batch_ids(server, created_after=local) == [after]
    r = server.get(f"/api/v1/batches?created_after={local}")  # '+' unencoded
    assert [b["batch_id"] for b in r.json()["items"]] == [after], r.text
    assert batch_ids(server, created_before=cut) == [before]
    assert sorted(batch_ids(server, created_after="1h")) == sorted([before, after])
    assert batch_ids(server, created_after="0s") == []
    assert batch_ids(server, created_after="2d", created_before="1d") == []


@pytest.mark.parametrize("value,says", [
    ("yesterday", "expected"), ("-1h", "negative"), ("2024-02-30T00:00:00Z", "no day 30"),
    ("2024-13-01T00:00:00Z", "no month 13"), ("99999999999999999999", "too large"),
    ("3y", "unknown unit"), ("2024-01-01", "RFC 3339"),
])
def test_bad_times(server, value, says):
    for path, param in (("/api/v1/batches", "created_after"), ("/api/v1/dlq", "since"),
                        ("/api/v1/audit", "until")):
        msg = error(server.get(path, params={param: value}), 400, "INVALID_PARAMETER")
        assert msg.startswith(param + ":") and says in msg, msg
    bid = upload(server, "t.csv")
    error(server.delete("/api/v1/batches", params={"created_after": value}), 400,
          "INVALID_PARAMETER")
    assert bid in batch_ids(server)


def test_dlq_time_range(server):
    def push(n):
        r = server.post_events("judgments", [{"case_number": f"CASE-{n:07d}", "amount": -1,
                                              "filed_date": "2024-01-01"}],
                               ctype="application/json")
        assert r.status_code == 422, r.text
    push(1)
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    push(2)

    def rows(**p):
        r = server.get("/api/v1/dlq", params=p)
        assert r.status_code == 200, r.text
        return [json.loads(i["payload"])["case_number"] for i in r.json()["items"]]
    assert rows() == ["CASE-0000002", "CASE-0000001"]
    assert rows(since=cut) == ["CASE-0000002"]
    assert rows(until=cut) == ["CASE-0000001"]
    assert rows(since="1h", until="0s", order="asc") == ["CASE-0000001", "CASE-0000002"]


# ---------------------------------------------------------------- order and cursors

def walk(server, path, key, **params):
    out, cursor, pages = [], None, 0
    while True:
        p = dict(params)
        if cursor:
            p["cursor"] = cursor
        r = server.get(path, params=p)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_cursor"}, body
        out += [i[key] for i in body["items"]]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            return out, pages
        assert isinstance(cursor, str) and pages < 50


def test_lists_newest_first_and_order(server):
    ids = [upload(server, f"f{i}.csv") for i in range(5)]
    for i in range(5):
        server.post_events("judgments", [{"case_number": "bad", "amount": -1,
                                          "filed_date": "2024-01-01"}], ctype="application/json")
    assert batch_ids(server) == ids[::-1]
    assert batch_ids(server, order="desc") == ids[::-1]
    assert batch_ids(server, order="asc") == ids
    for order, want in (("desc", ids[::-1]), ("asc", ids)):
        got, pages = walk(server, "/api/v1/batches", "batch_id", limit=2,
                          **({"order": order} if order == "asc" else {}))
        assert got == want and pages == 3, (order, got)
    # the batches' duplicate rows (one key in all five files) go to the DLQ as each batch
    # completes: the two DLQ walks must see the same entries
    deadline = time.time() + 60
    while time.time() < deadline and any(
            server.get(f"/api/v1/batches/{b}").json()["status"] not in ("completed", "failed")
            for b in ids):
        time.sleep(0.05)
    dlq_desc, _ = walk(server, "/api/v1/dlq", "id", limit=2)
    dlq_asc, _ = walk(server, "/api/v1/dlq", "id", limit=2, order="asc")
    assert len(dlq_desc) >= 5 and dlq_desc == sorted(dlq_desc, reverse=True)
    assert dlq_asc == dlq_desc[::-1]


def test_cursor_checks(server):
    for i in range(3):
        upload(server, f"c{i}.csv")
        server.post_events("judgments", [{"case_number": "bad", "amount": -1,
                                          "filed_date": "2024-01-01"}], ctype="application/json")
    b = server.get("/api/v1/batches", params={"limit": 1}).json()["next_cursor"]
    d = server.get("/api/v1/dlq", params={"limit": 1}).json()["next_cursor"]
    a = server.get("/api/v1/dlq", params={"limit": 1, "order": "asc"}).json()["next_cursor"]
    assert b and d and a and len({b, d, a}) == 3
    msg = error(server.get("/api/v1/batches", params={"cursor": b, "order": "asc"}), 400,
                "INVALID_CURSOR")
    assert "order=desc" in msg, msg
    msg = error(server.get("/api/v1/dlq", params={"cursor": b}), 400, "INVALID_CURSOR")
    assert "batches" in msg and "dlq" in msg, msg
    msg = error(server.get("/api/v1/dlq", params={"cursor": a}), 400, "INVALID_CURSOR")
    assert "order=asc" in msg, msg
    error(server.get("/api/v1/audit", params={"cursor": a}), 400, "INVALID_CURSOR")
    error(server.get("/api/v1/alerts", params={"cursor": d}), 400, "INVALID_CURSOR")
    for junk in ("1", "abc", "djEgZGxxIGQgeA", "%00", "=="):
        error(server.get("/api/v1/dlq", params={"cursor": junk}), 400, "INVALID_CURSOR")
    assert server.get("/api/v1/batches", params={"cursor": b}).status_code == 200


def test_cli_times_order_and_cursor(server):
    import subprocess
    from conftest import BIN

    def cli(*args):
        p = subprocess.run([BIN, "batch", "list", *args, "--url", server.url],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr
    ids = [upload(server, f"cli{i}.csv") for i in range(3)]
    rc, out, err = cli("--since", "1h", "--order", "asc", "--limit", "2")
    assert rc == 0, (out, err)
    page = json.loads(out)
    assert [b["batch_id"] for b in page["items"]] == ids[:2] and page["next_cursor"]
    rc, out, err = cli("--since", "1h", "--order", "asc", "--limit", "2",
                       "--cursor", page["next_cursor"])
    assert rc == 0 and [b["batch_id"] for b in json.loads(out)["items"]] == ids[2:], (out, err)
    rc, out, err = cli("--until", "1h")
    assert rc == 0 and json.loads(out)["items"] == [], (out, err)
    rc, out, err = cli()
    assert [b["batch_id"] for b in json.loads(out)["items"]] == ids[::-1]
    for bad, says in (("2024-02-30T00:00:00Z", "no day 30"), ("-1h", "negative"),
                      ("soon", "expected")):
        rc, out, err = cli("--since", bad)
        assert rc == 2 and "--since" in err and says in err and out == "", (bad, rc, out, err)


def test_error_distribution_order(server):
    """Most frequent first by default; order=asc turns it round; a bad order is 400."""
    rows = [{"case_number": "CASE-000000%d" % i, "amount": -1, "filed_date": "2024-01-01"}
            for i in range(1, 4)]
    rows.append({"case_number": "bad", "amount": 1, "filed_date": "2024-01-01"})
    r = server.post_events("judgments", "\n".join(json.dumps(x) for x in rows))
    assert r.status_code == 422, r.text
    def codes(**params):
        r = server.get("/api/v1/errors/distribution", params=params)
        assert r.status_code == 200, r.text
        return [(i["error_code"], i["occurrence_count"]) for i in r.json()["items"]]
    assert codes() == [("OUT_OF_RANGE", 3), ("PATTERN_MISMATCH", 1)]
    assert codes(order="desc") == codes()
    assert codes(order="asc") == [("PATTERN_MISMATCH", 1), ("OUT_OF_RANGE", 3)]
    r = server.get("/api/v1/errors/distribution", params={"order": "newest"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_PARAMETER", r.text
    assert "order" in r.json()["error"]["message"], r.text
