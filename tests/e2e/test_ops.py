"""Operations: health endpoints, /metrics, JSON logs, signals (SIGTERM, SIGHUP reload),
configuration errors and overrides, and the version/help commands
(docs/api-contract-draft.md, "Health", "Metrics", "Logs", "Lifecycle")."""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import BIN, JUDGMENTS, ROOT, SANITIZED, free_port, sqlite_db, wait_for

PROMTOOL = "/usr/bin/promtool"
with open(os.path.join(ROOT, "VERSION")) as _f:
    VERSION = _f.read().strip()


# ---------------------------------------------------------------- helpers

def jrow(n, **kw):
    row = {"case_number": f"CASE-{n:07d}", "amount": 10.5, "filed_date": "2023-01-15"}
    row.update(kw)
    return row


def db_rows(server, dataset):
    with server.db() as db:
        return db.dataset_rows(dataset)


def file_rows(db_path, dataset):
    """The rows of a server started by hand (Proc) with no `storage:` in its config: the
    default store, the SQLite file <data_dir>/sluice.db, whatever SLUICE_TEST_STORE says."""
    with sqlite_db(db_path) as db:
        return db.dataset_rows(dataset)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_metrics(text):
    """-> (samples [(name, labels dict, value)], types {family: type})."""
    samples, types = [], {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                assert parts[2] not in types, f"TYPE twice for {parts[2]}"
                types[parts[2]] = parts[3].strip()
            continue
        m = SAMPLE.match(line)
        assert m, f"unparseable metrics line: {line!r}"
        name, lbl, val = m.groups()
        labels = {}
        if lbl:
            pos = 0
            for lm in LABEL.finditer(lbl):
                assert lm.start() == pos, f"bad labels in {line!r}"
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
            assert pos == len(lbl), f"bad labels in {line!r}"
        samples.append((name, labels, float(val)))
    return samples, types


def scrape(server):
    r = server.get("/metrics")
    assert r.status_code == 200, r.text
    ct = r.headers.get("Content-Type", "")
    assert ct.startswith("text/plain") and "version=0.0.4" in ct, ct
    return r.text


def series(samples, name, **match):
    return [(lb, v) for n, lb, v in samples
            if n == name and all(lb.get(k) == want for k, want in match.items())]


def value(samples, name, default=0.0, **match):
    got = series(samples, name, **match)
    assert len(got) <= 1, (name, match, got)
    return got[0][1] if got else default


def run(args, env=None, timeout=30):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([BIN, *args], capture_output=True, timeout=timeout, env=e)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- health

def test_health_endpoints(server):
    for path in ("/healthz", "/health/live", "/health/ready"):
        r = server.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == {"status": "ok"}, (path, r.text)
        assert r.headers.get("Content-Type", "").startswith("application/json"), path

    r = server.get("/health/detailed")
    assert r.status_code == 200, r.text
    d = r.json()
    assert {"status", "version", "uptime_s", "checks"} <= set(d), d
    assert d["status"] in ("pass", "warn"), d
    assert d["version"] == VERSION
    assert isinstance(d["uptime_s"], (int, float)) and d["uptime_s"] >= 0
    # the test servers run with auth.dev_bypass, which is a warning of its own
    names = {c["name"] for c in d["checks"]}  # wal: the SQLite store only
    assert {"audit", "auth", "db", "disk", "queue"} <= names <= \
        {"audit", "auth", "db", "disk", "queue", "wal"}, d
    for c in d["checks"]:
        assert {"name", "status", "detail"} <= set(c), c
        assert c["status"] in ("pass", "warn", "fail"), c
    checks = {c["name"]: c for c in d["checks"]}
    assert checks["auth"]["status"] == "warn" and "dev_bypass" in checks["auth"]["detail"], d
    assert checks["db"]["status"] == "pass", d
    assert checks["queue"]["status"] == "pass", d
    worst = max((c["status"] for c in d["checks"]), key=["pass", "warn", "fail"].index)
    assert d["status"] == worst, d

    r = server.get("/health/db")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pass" and "detail" in r.json(), r.text


def test_request_id_and_routing_errors(server):
    r = server.get("/healthz", headers={"X-Request-Id": "my-id-42"})
    assert r.headers.get("X-Request-Id") == "my-id-42"
    r1, r2 = server.get("/healthz"), server.get("/healthz")
    assert r1.headers.get("X-Request-Id") and r2.headers.get("X-Request-Id")
    assert r1.headers["X-Request-Id"] != r2.headers["X-Request-Id"]

    r = server.get("/no/such/path")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", r.text
    assert r.headers.get("X-Request-Id")
    r = server.delete("/healthz")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED", r.text
    assert "GET" in r.headers.get("Allow", ""), r.headers
    r = server.get("/api/v1/datasets/judgments/events")
    assert r.status_code == 405, r.text
    assert "POST" in r.headers.get("Allow", ""), r.headers


def test_datasets_endpoints(server):
    r = server.get("/api/v1/datasets")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None
    assert sorted(i["name"] for i in body["items"]) == \
        ["anything", "events", "judgments", "skips", "upserts"]
    for it in body["items"]:
        assert set(it) == {"name", "key", "on_duplicate", "error_threshold_percent", "schema"}
    r = server.get("/api/v1/datasets/judgments")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["name"] == "judgments" and j["key"] == "case_number"
    assert j["on_duplicate"] == "reject" and j["error_threshold_percent"] == 10
    assert sorted(j["schema"]["required"]) == ["amount", "case_number", "filed_date"]
    assert j["schema"]["properties"]["amount"] == {"type": "number", "minimum": 0}
    assert server.get("/api/v1/datasets/upserts").json()["on_duplicate"] == "upsert"
    assert server.get("/api/v1/datasets/events").json()["key"] is None
    r = server.get("/api/v1/datasets/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "DATASET_NOT_FOUND", r.text


# ---------------------------------------------------------------- metrics

def test_metrics_lint_and_no_duplicate_series(server):
    server.post_events("judgments", json.dumps([jrow(1), jrow(2, amount=-1)]),
                       ctype="application/json")
    server.get("/no/such/path")
    text = scrape(server)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    findings = (p.stdout + p.stderr).decode().strip()
    assert p.returncode == 0 and findings == "", f"promtool rc={p.returncode}:\n{findings}"

    samples, types = parse_metrics(text)
    seen = collections.Counter((n, tuple(sorted(lb.items()))) for n, lb, _ in samples)
    dups = [k for k, c in seen.items() if c > 1]
    assert dups == [], f"duplicate series: {dups}"

    for fam, typ in {"sluice_rows_received_total": "counter",
                     "sluice_rows_accepted_total": "counter",
                     "sluice_rows_rejected_total": "counter",
                     "sluice_rows_duplicate_total": "counter",
                     "sluice_http_requests_total": "counter",
                     "sluice_http_request_duration_seconds": "histogram",
                     "sluice_dlq_depth": "gauge",
                     "sluice_writer_queue_depth": "gauge",
                     "sluice_writer_commits_total": "counter",
                     "sluice_build_info": "gauge",
                     "sluice_uptime_seconds": "gauge"}.items():
        # counters may be declared with or without the _total suffix in # TYPE
        declared = types.get(fam) or types.get(fam[:-len("_total")] if fam.endswith("_total")
                                               else fam)
        assert declared == typ, (fam, declared)

    builds = series(samples, "sluice_build_info")
    assert len(builds) == 1, builds
    lb, v = builds[0]
    assert v == 1 and lb.get("version") == VERSION and lb.get("revision"), builds
    assert value(samples, "sluice_uptime_seconds", default=-1) >= 0
    assert len(series(samples, "sluice_writer_queue_depth")) == 1
    assert value(samples, "sluice_writer_commits_total", default=-1) >= 1


def test_metrics_match_api_answers(server):
    answers = collections.defaultdict(list)   # dataset -> ingest bodies
    statuses = collections.Counter()           # POST status -> count

    def send(dataset, body, ctype="application/json"):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        r = server.post_events(dataset, body, ctype=ctype)
        assert r.status_code in (200, 207, 422), r.text
        answers[dataset].append(r.json())
        statuses[r.status_code] += 1

    send("judgments", [jrow(1), jrow(2), jrow(3, amount=-1, status="x"),
                       {"case_number": "CASE-0000004"}])
    send("judgments", json.dumps(jrow(5)).encode() + b"\n{\"case_number\": \n" +
         b'{"case_number": "CASE-0000006", "notes": "\xff"}\n' + json.dumps(jrow(7)).encode(),
         ctype="application/x-ndjson")
    send("judgments", [jrow(1)])                                   # DUPLICATE_KEY
    send("judgments", [jrow(8, judge="x"), jrow(9, notes="n" * 2001)])
    send("skips", [{"id": 1}, {"id": 1}, {"id": 2}])
    send("skips", [{"id": 2}])
    send("upserts", [{"id": 1, "v": "a"}, {"id": 1, "v": "b"}])
    send("events", [{"id": "x"}, {"id": 1}, {"id": 2.5}])
    send("anything", {"whatever": True})

    samples, _ = parse_metrics(scrape(server))
    for ds, bodies in answers.items():
        received = sum(b["received"] for b in bodies)
        accepted = sum(b["accepted"] for b in bodies)
        rejected = sum(b["rejected"] for b in bodies)
        duplicates = sum(b["duplicates"] for b in bodies)
        by_code = collections.Counter()
        for b in bodies:
            assert b["errors_truncated"] is False
            first = {}
            for e in b["errors"]:
                first.setdefault(e["row"], e["code"])
            assert len(first) == b["rejected"], b
            by_code.update(first.values())

        m_received = value(samples, "sluice_rows_received_total", dataset=ds)
        m_accepted = value(samples, "sluice_rows_accepted_total", dataset=ds)
        m_dups = value(samples, "sluice_rows_duplicate_total", dataset=ds)
        m_rej = {lb["error_code"]: v
                 for lb, v in series(samples, "sluice_rows_rejected_total", dataset=ds) if v}
        assert (m_received, m_accepted, m_dups) == (received, accepted, duplicates), \
            (ds, m_received, m_accepted, m_dups, received, accepted, duplicates)
        assert m_rej == dict(by_code), (ds, m_rej, dict(by_code))
        assert m_received == m_accepted + sum(m_rej.values()) + m_dups, ds
        assert value(samples, "sluice_dlq_depth", dataset=ds) == rejected, ds

    # the invariant holds for every dataset that has series at all
    for lb, v in series(samples, "sluice_rows_received_total"):
        ds = lb["dataset"]
        rej = sum(x for _, x in series(samples, "sluice_rows_rejected_total", dataset=ds))
        assert v == value(samples, "sluice_rows_accepted_total", dataset=ds) + rej + \
            value(samples, "sluice_rows_duplicate_total", dataset=ds), ds

    # request counter: exactly the POSTs we made, by status
    for status, n in statuses.items():
        got = sum(v for _, v in series(samples, "sluice_http_requests_total", method="POST",
                                       status=str(status)))
        assert got == n, (status, got, n)
    post_routes = {lb["route"] for lb, _ in series(samples, "sluice_http_requests_total",
                                                   method="POST")}
    assert len(post_routes) == 1, post_routes   # one route label, not one per dataset/path
    route = post_routes.pop()
    assert route

    # histogram for that route: cumulative buckets, +Inf == _count, _sum present
    buckets = [(lb["le"], v) for lb, v in
               series(samples, "sluice_http_request_duration_seconds_bucket", route=route)]
    assert buckets, "no duration histogram for the events route"
    les = [float("inf") if le == "+Inf" else float(le) for le, _ in buckets]
    assert les == sorted(les) and les[-1] == float("inf"), les
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), buckets
    count = value(samples, "sluice_http_request_duration_seconds_count", default=-1, route=route)
    assert count == counts[-1] == sum(statuses.values()), (count, counts[-1], statuses)
    assert value(samples, "sluice_http_request_duration_seconds_sum", default=-1,
                 route=route) >= 0


# ---------------------------------------------------------------- logs

def test_logs_are_json_with_one_line_per_request(server):
    body = json.dumps([jrow(1), jrow(2, amount=-1)])
    calls = [("GET", "/healthz", None, 200, "log-1"),
             ("GET", "/no/such/thing", None, 404, "log-2"),
             ("POST", "/api/v1/datasets/judgments/events", body, 207, "log-3"),
             ("GET", "/api/v1/dlq", None, 200, "log-4"),
             ("GET", "/metrics", None, 200, "log-5")]
    with requests.Session() as s:   # keep-alive: several requests on one connection
        for method, path, data, status, rid in calls:
            h = {"X-Request-Id": rid}
            if data:
                h["Content-Type"] = "application/json"
            r = s.request(method, server.url + path, data=data, headers=h, timeout=30)
            assert r.status_code == status, (path, r.text)
    assert server.stop() == 0

    lines = [ln for ln in server.logs().splitlines() if ln.strip()]
    assert lines, "no log output"
    parsed = []
    for ln in lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            raise AssertionError(f"log line is not JSON: {ln!r}")
        assert isinstance(obj, dict), ln
        assert isinstance(obj.get("time"), str) and obj["time"], ln
        assert obj.get("level") in ("debug", "info", "warn", "error"), ln
        assert isinstance(obj.get("msg"), str) and obj["msg"], ln
        parsed.append(obj)

    reqs = [o for o in parsed if o["msg"] == "request"]
    for method, path, data, status, rid in calls:
        mine = [o for o in reqs if o.get("request_id") == rid]
        assert len(mine) == 1, (rid, mine)
        o = mine[0]
        assert o.get("method") == method, o
        assert o.get("path", "").split("?")[0] == path, o
        assert o.get("status") == status, o
        assert isinstance(o.get("duration_ms"), (int, float)) and o["duration_ms"] >= 0, o
        assert isinstance(o.get("bytes_in"), int), o
        if data:
            assert o["bytes_in"] >= len(data), o


# ---------------------------------------------------------------- signals

def test_sigterm_exits_0_within_10s_with_idle_keepalive(server):
    # an idle keep-alive connection must not hold the shutdown up
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in sock.recv(4096).split(b"\r\n")[0]
        t0 = time.time()
        server.proc.send_signal(signal.SIGTERM)
        rc = server.proc.wait(10)
        assert rc == 0, server.logs()[-3000:]
        assert time.time() - t0 < 10
    finally:
        sock.close()


def test_sighup_adds_dataset_without_dropping_keepalive(server):
    s = requests.Session()
    r = s.post(server.url + "/api/v1/datasets/events/events", json=[{"id": 1}], timeout=30)
    assert r.status_code == 200, r.text
    pool = s.get_adapter(server.url).poolmanager.connection_from_url(server.url)
    conns_before = pool.num_connections
    assert conns_before == 1

    events_with_tag = JUDGMENTS.replace(
        "        id: {type: integer}\n        name: {type: string}\n",
        "        id: {type: integer}\n        name: {type: string}\n        tag: {type: string}\n",
        1)
    assert events_with_tag != JUDGMENTS
    server.write_config(datasets_yaml=events_with_tag + """
  - name: added
    key: k
    schema:
      type: object
      required: [k]
      properties:
        k: {type: string}
""")
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: requests.get(server.url + "/api/v1/datasets/added", timeout=5)
             .status_code == 200, what="dataset 'added' after SIGHUP")

    r = s.post(server.url + "/api/v1/datasets/added/events", json={"k": "a"}, timeout=30)
    assert r.status_code == 200, r.text
    r = s.post(server.url + "/api/v1/datasets/events/events", json={"id": 2, "tag": "t"},
               timeout=30)
    assert r.status_code == 200, r.text
    assert pool.num_connections == conns_before, "the keep-alive connection was dropped"
    s.close()

    assert [x["k"] for x in db_rows(server, "added")] == ["a"]
    ev = db_rows(server, "events")
    assert [(x["id"], x.get("tag"), x["_extra"]) for x in ev] == [(1, None, None), (2, "t", None)]
    assert server.proc.poll() is None


REFUSED = {
    "type_change": ("        id: {type: integer}\n", "        id: {type: string}\n", "id"),
    "removed_field": ("        name: {type: string}\n", "", "name"),
    "new_required_field": ("        id: {type: integer}\n        name: {type: string}\n",
                           "        id: {type: integer}\n        name: {type: string}\n"
                           "        tag: {type: string}\n      required: [tag]\n", "tag"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_sighup_incompatible_change_is_refused(server, case):
    old, new, field = REFUSED[case]
    assert old in JUDGMENTS
    # also add a dataset: a refused reload must not apply any part of the new file
    server.write_config(datasets_yaml=JUDGMENTS.replace(old, new, 1) + """
  - name: sneaky
    schema: {type: object}
""")
    server.proc.send_signal(signal.SIGHUP)
    line = wait_for(lambda: [o for o in server.log_lines()
                             if o.get("msg") == "config reload refused"],
                    what="'config reload refused' log line")[0]
    assert line.get("level") in ("warn", "error"), line
    # the reason names the dataset and the field
    reason = " ".join(str(v) for k, v in line.items() if k not in ("msg", "time", "level"))
    assert "events" in reason and re.search(rf"\b{field}\b", reason), line

    schema = server.get("/api/v1/datasets/events").json()["schema"]
    assert schema["properties"] == {"id": {"type": "integer"}, "name": {"type": "string"}}
    assert "tag" not in schema.get("required", [])
    assert server.get("/api/v1/datasets/sneaky").status_code == 404

    r = server.post_events("events", [{"id": 5, "name": "n"}], ctype="application/json")
    assert r.status_code == 200, r.text
    r = server.post_events("events", [{"id": "x"}], ctype="application/json")
    assert r.status_code == 422, r.text
    assert [e["code"] for e in r.json()["errors"]] == ["INVALID_TYPE"]
    assert [(x["id"], x["name"]) for x in db_rows(server, "events")] == [(5, "n")]


# ---------------------------------------------------------------- config

BAD_CONFIGS = {
    # name: (file text, line (or lines accepted), words the message must contain)
    "unknown_key": ("listen: 127.0.0.1:18089\n"
                    "data_dir: {d}\n"
                    "limits:\n"
                    "  max_body_bytes: 1M\n"
                    "  max_bodyy_bytes: 2M\n"
                    "datasets:\n"
                    "  - name: events\n"
                    "    schema: {{type: object}}\n", 5, ["max_bodyy_bytes"]),
    "unknown_top_level_key": ("listen: 127.0.0.1:18089\n"
                              "data_dir: {d}\n"
                              "listne: 127.0.0.1:0\n"
                              "datasets:\n"
                              "  - name: events\n"
                              "    schema: {{type: object}}\n", 3, ["listne"]),
    "bad_size": ("listen: 127.0.0.1:18089\n"
                 "data_dir: {d}\n"
                 "limits:\n"
                 "  max_body_bytes: lots\n"
                 "datasets:\n"
                 "  - name: events\n"
                 "    schema: {{type: object}}\n", 4, ["max_body_bytes", "lots"]),
    "bad_duration": ("listen: 127.0.0.1:18089\n"
                     "data_dir: {d}\n"
                     "http:\n"
                     "  idle_timeout: forever\n"
                     "datasets:\n"
                     "  - name: events\n"
                     "    schema: {{type: object}}\n", 4, ["idle_timeout", "forever"]),
    "bad_schema_keyword": ("listen: 127.0.0.1:18089\n"
                           "data_dir: {d}\n"
                           "datasets:\n"
                           "  - name: events\n"
                           "    schema:\n"
                           "      type: object\n"
                           "      properties:\n"
                           "        id: {{type: integer}}\n"
                           "        amount: {{type: number, minimun: 0}}\n", (9, 5),
                           ["amount", "minimun"]),
    "bad_field_type": ("listen: 127.0.0.1:18089\n"
                       "data_dir: {d}\n"
                       "datasets:\n"
                       "  - name: events\n"
                       "    schema:\n"
                       "      type: object\n"
                       "      properties:\n"
                       "        id: {{type: integr}}\n", (8, 5), ["id", "integr"]),
}


def readable(stderr):
    """stderr as text, plus the string values of any JSON log lines in it."""
    parts = [stderr]
    for ln in stderr.splitlines():
        try:
            obj = json.loads(ln)
        except ValueError:
            continue
        if isinstance(obj, dict):
            parts += [str(v) for v in obj.values()]
    return "\n".join(parts)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exits_2_naming_file_line_option(tmp_path, case):
    text, line, words = BAD_CONFIGS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text.format(d=tmp_path / "data"))
    rc, out, err = run(["serve", "--config", str(path)], timeout=20)
    assert rc == 2, (rc, out, err)
    msg = readable(err)
    # A schema error may point at the offending line or at its dataset's `schema:` line
    # (the schema is compiled from JSON), as long as the message names the property.
    lines = line if isinstance(line, tuple) else (line,)
    assert any(f"{path}:{n}:" in msg for n in lines), msg
    for w in words:
        assert w in msg, (w, msg)


def test_missing_config_file_exits_2(tmp_path):
    path = tmp_path / "nope.yaml"
    rc, out, err = run(["serve", "--config", str(path)], timeout=20)
    assert rc == 2, (rc, out, err)
    assert str(path) in readable(err)


MINI = """listen: 127.0.0.1:{port}
data_dir: {data}
auth: {{dev_bypass: true}}
datasets:
  - name: events
    schema:
      type: object
      properties:
        id: {{type: integer}}
"""


class Proc:
    """A sluice started by hand with its own arguments and environment."""

    def __init__(self, tmp_path, name):
        self.dir = tmp_path / name
        self.dir.mkdir()
        self.log_path = self.dir / "log"
        self.proc = None

    def start(self, args, env=None):
        e = dict(os.environ)
        for k in ("SLUICE_LISTEN", "SLUICE_DATA_DIR"):
            e.pop(k, None)
        e.update(env or {})
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, *args], stdout=self.log, stderr=self.log, env=e)
        return self

    def wait_ready(self, port, timeout=30):
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: "
                                     f"{self.log_path.read_text(errors='replace')}")
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError("not ready: " + self.log_path.read_text(errors="replace"))

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def procs(tmp_path):
    made = []

    def _make(name):
        p = Proc(tmp_path, name)
        made.append(p)
        return p

    yield _make
    for p in made:
        code = p.stop()
        if SANITIZED and code not in (None, 0):
            pytest.fail(f"sanitized server exited {code}: "
                        f"{p.log_path.read_text(errors='replace')[-4000:]}")


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def write_mini(dirpath, port, data):
    cfg = dirpath / "sluice.yaml"
    cfg.write_text(MINI.format(port=port, data=data))
    return cfg


def ingest_one(url):
    r = requests.post(url + "/api/v1/datasets/events/events", json={"id": 7}, timeout=30)
    assert r.status_code == 200, r.text


def test_listen_and_data_dir_flags(procs):
    p = procs("flags")
    file_port, flag_port = free_port(), free_port()
    file_data, flag_data = p.dir / "file-data", p.dir / "flag-data"
    cfg = write_mini(p.dir, file_port, file_data)
    p.start(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{flag_port}",
             "--data-dir", str(flag_data)])
    url = p.wait_ready(flag_port)
    assert not listening(file_port)
    ingest_one(url)
    assert [x["id"] for x in file_rows(flag_data / "sluice.db", "events")] == [7]
    assert not (file_data / "sluice.db").exists()
    assert p.stop() == 0


def test_env_overrides_and_flag_beats_env(procs):
    p = procs("env")
    file_port, env_port = free_port(), free_port()
    env_data = p.dir / "env-data"
    cfg = write_mini(p.dir, file_port, p.dir / "file-data")
    env = {"SLUICE_LISTEN": f"127.0.0.1:{env_port}", "SLUICE_DATA_DIR": str(env_data)}
    p.start(["serve", "--config", str(cfg)], env=env)
    url = p.wait_ready(env_port)
    assert not listening(file_port)
    ingest_one(url)
    assert [x["id"] for x in file_rows(env_data / "sluice.db", "events")] == [7]
    assert not (p.dir / "file-data" / "sluice.db").exists()
    assert p.stop() == 0

    q = procs("env-and-flag")
    flag_port = free_port()
    q.start(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{flag_port}"],
            env={"SLUICE_LISTEN": f"127.0.0.1:{env_port}"})
    q.wait_ready(flag_port)
    assert not listening(env_port)
    assert q.stop() == 0


# ---------------------------------------------------------------- CLI

def test_version():
    rc, out, err = run(["version"])
    assert rc == 0, (rc, out, err)
    assert VERSION in out


def test_help_lists_subcommands():
    rc, out, err = run(["help"])
    assert rc == 0, (rc, out, err)
    for cmd in ("serve", "dlq", "version", "help"):
        assert re.search(rf"\b{cmd}\b", out), (cmd, out)


def test_help_dlq():
    rc, out, err = run(["help", "dlq"])
    assert rc == 0, (rc, out, err)
    for word in ("list", "show", "retry", "drop", "--url"):
        assert word in out, (word, out)
    rc2, out2, _ = run(["help"])
    assert out != out2, "help dlq prints the same text as help"


def test_unknown_command_is_usage_error():
    rc, out, err = run(["frobnicate"])
    assert rc == 2, (rc, out, err)
    rc, out, err = run(["serve", "--no-such-flag"], timeout=20)
    assert rc == 2, (rc, out, err)
