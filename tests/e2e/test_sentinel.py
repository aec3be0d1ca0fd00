"""The sentinel, alerts and their receivers (issue 6): a webhook receiver and a real
Alertmanager (Debian's prometheus-alertmanager, started here on loopback) see a stuck batch
fire once and resolve once; error spikes, DLQ growth, a stalled source and a missing
database each give the right finding and exit code from `sluice sentinel`; the KPI and
error views count what was stored, across a reprocess and a rebuild."""
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, free_port, wait_for

AM_BIN = shutil.which("prometheus-alertmanager")

EVENTS = """  - name: ev
    schema:
      type: object
      required: [id]
      properties:
        id: {type: integer}
"""


class Hook:
    """A webhook receiver: records every POSTed JSON body."""

    def __init__(self):
        self.bodies = []
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def alertmanager(tmp_path):
    if not AM_BIN:
        pytest.skip("prometheus-alertmanager is not installed")
    port = free_port()
    cfg = tmp_path / "am.yml"
    cfg.write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n")
    p = subprocess.Popen([AM_BIN, f"--config.file={cfg}", f"--storage.path={tmp_path}/am",
                          f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.time() < deadline and p.poll() is None, "alertmanager did not start"
        time.sleep(0.1)
    yield url
    p.terminate()
    p.wait(10)


def am_alerts(url):
    return [a for a in requests.get(url + "/api/v2/alerts", timeout=5).json()
            if a["labels"].get("service") == "sluice"]


def test_stuck_batch_fires_once_and_resolves_once(make_server, hook, alertmanager):
    extra = f"""
batches: {{workers: 0}}
sentinel:
  interval_s: 1
  rules:
    stuck_batches: {{after_s: 6, severity: critical}}
alerts:
  repeat_interval_s: 3600
  receivers:
    - {{name: oncall, type: webhook, url: "http://127.0.0.1:{hook.port}/hook"}}
    - {{name: am, type: alertmanager, url: "{alertmanager}"}}
  routes:
    - {{severity: critical, receivers: [oncall, am]}}
"""
    server = make_server(extra_yaml=extra)
    r = requests.post(server.url + "/api/v1/datasets/judgments/batches",
                      data=b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-01\n",
                      headers={"Content-Type": "text/csv"}, timeout=30)
    bid = r.json()["batch_id"]
    # made to look stuck: in `validating` for an hour, its worker gone
    with server.db(readonly=False) as db:
        db.execute("UPDATE batches SET status = 'validating', updated_ms = updated_ms - 3600000,"
                   " lease_until_ms = 0, worker = 'ghost/w1' WHERE id = ?", (bid,))
    firing = wait_for(lambda: [b for b in hook.bodies if b["status"] == "firing"],
                      what="the webhook's firing notification")
    a = firing[0]["alert"]
    assert a["rule"] == "stuck_batches" and a["severity"] == "critical"
    assert a["summary"] == f"1 batch stuck > 6s: {bid} (judgments)", a
    assert [x["batch_id"] for x in a["details"]["batches"]] == [bid]
    am = wait_for(lambda: am_alerts(alertmanager), what="the alert in Alertmanager")
    assert am[0]["labels"]["alertname"] == "stuck_batches"
    assert am[0]["labels"]["severity"] == "critical"
    assert am[0]["annotations"]["summary"] == f"1 batch stuck > 6s: {bid} (judgments)"
    alerts = server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]
    assert len(alerts) == 1 and alerts[0]["rule"] == "stuck_batches"
    time.sleep(2.5)  # more evaluations: still one notification
    assert len([b for b in hook.bodies if b["status"] == "firing"]) == 1

    assert server.post(f"/api/v1/batches/{bid}/reset").status_code == 200
    wait_for(lambda: [b for b in hook.bodies if b["status"] == "resolved"],
             what="the webhook's resolution")
    wait_for(lambda: not am_alerts(alertmanager), what="Alertmanager to see the resolution")
    assert [b["status"] for b in hook.bodies] == ["firing", "resolved"], hook.bodies
    one = server.get(f"/api/v1/alerts/{alerts[0]['id']}").json()
    assert one["state"] == "resolved" and one["resolved_at"]
    assert [h["event"] for h in one["history"]] == ["firing", "resolved"]
    m = server.get("/metrics").text
    assert 'sluice_alert_deliveries_total{receiver="oncall"} 2' in m
    assert 'sluice_alerts_firing{severity="critical"} 0' in m


def test_slack_format_and_failing_receiver_do_not_block(make_server, hook):
    import socket
    # a receiver that accepts connections and never answers: each POST waits for its 5 s
    # timeout, so a notifier that blocked anything would show here
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    extra = f"""
sentinel:
  interval_s: 1
  rules:
    error_rate: {{min_rows: 2, window_s: 60}}
alerts:
  receivers:
    - {{name: chat, type: webhook, format: slack, url: "http://127.0.0.1:{hook.port}/x"}}
    - {{name: hang, type: webhook, url: "http://127.0.0.1:{hang.getsockname()[1]}/nobody"}}
"""
    try:
        server = make_server(extra_yaml=extra, datasets_yaml=EVENTS)
        r = server.post_events("ev", '{"id":1}\n{"id":"x"}\n{"id":"y"}\n')
        assert r.status_code == 207
        body = wait_for(lambda: hook.bodies, what="the slack message")[0]
        assert body == {"text": body["text"]} and body["text"].startswith(
            "[FIRING] critical error_rate: Error rate of ev ")
        # the hanging receiver is being tried in the background; ingestion goes on
        for i in range(5):
            t0 = time.time()
            assert server.post_events("ev", '{"id":%d}\n' % (i + 2)).status_code == 200
            assert time.time() - t0 < 3, "an ingest request waited for the notifier"
        wait_for(lambda: 'sluice_alert_delivery_failures_total{receiver="hang"} 1' in
                 server.get("/metrics").text, timeout=20, what="a failed attempt (5 s timeout)")
    finally:
        hang.close()


def run_sentinel(server):
    p = subprocess.run([BIN, "sentinel", "--config", server.config_path, "--json"],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout)


def rules(report):
    return {(f["rule"], f["severity"]) for f in report["findings"]}


def test_sentinel_cli_findings_and_exit_codes(make_server):
    extra = """
sentinel:
  interval_s: 0
  rules:
    error_rate: {min_rows: 5, warning_pct: 10, critical_pct: 50}
    dlq_growth: {warning_count: 3}
"""
    stalled = EVENTS + """  - name: quiet
    expected_every: 2s
    schema: {type: object}
"""
    server = make_server(extra_yaml=extra, datasets_yaml=stalled)
    server.post_events("quiet", "{}\n")
    code, rep = run_sentinel(server)
    assert (code, rep["status"], rep["findings"]) == (0, "ok", []), rep
    # 2 of 10 rows rejected: a warning spike
    server.post_events("ev", "".join('{"id":%d}\n' % i for i in range(8)) + '{"id":"a"}\n{}\n')
    code, rep = run_sentinel(server)
    assert code == 1 and rules(rep) == {("error_rate", "warning")}, rep
    f = rep["findings"][0]
    assert f["labels"] == {"dataset": "ev"} and f["summary"] == "Error rate of ev 20.0% > 10.0% threshold"
    # many more rejected: critical, and the DLQ grew by more than 3
    server.post_events("ev", '{"id":"b"}\n' * 12)
    code, rep = run_sentinel(server)
    assert code == 2 and ("error_rate", "critical") in rules(rep), rep
    assert ("dlq_growth", "warning") in rules(rep)
    # the quiet source stalls
    time.sleep(2.5)
    code, rep = run_sentinel(server)
    assert ("source_stalled", "warning") in rules(rep), rep
    # a stopped server and a missing database (SQLite: the file removed; PostgreSQL: dropped)
    server.stop()
    server.remove_store()
    code, rep = run_sentinel(server)
    assert code == 2, rep
    assert {"store_unavailable", "server_unavailable"} <= {r for r, _ in rules(rep)}, rep


def test_kpis_and_error_views_count_what_was_stored(make_server):
    server = make_server(extra_yaml="sentinel: {interval_s: 0}\n")
    body = b"case_number,amount,filed_date\n" + b"".join(
        b"CASE-%07d,%s,2024-01-01\n" % (i, b"-1" if i % 4 == 0 else b"5") for i in range(1, 21))
    r = requests.post(server.url + "/api/v1/datasets/judgments/batches", data=body,
                      params={"error_threshold_percent": "50"},
                      headers={"Content-Type": "text/csv"}, timeout=30)
    bid = r.json()["batch_id"]
    wait_for(lambda: server.get(f"/api/v1/batches/{bid}").json()["status"] == "completed")
    server.post_events("judgments", '{"case_number":"x","amount":1,"filed_date":"2024-01-01"}\n')
    k = server.get("/api/v1/stats/kpis").json()
    t = k["today"]
    assert (t["rows_received"], t["rows_inserted"], t["rows_invalid"]) == (21, 15, 6), k
    assert t["batches"] == {"completed": 1} and t["error_rate_pct"] == pytest.approx(28.57)
    assert k["open_dlq_entries"] == 6 and k["last_ingest_at"]
    h = server.get("/api/v1/stats/hourly").json()["items"]
    assert [(x["dataset"], x["total_batches"], x["total_rows"], x["error_rows"]) for x in h] == \
        [("judgments", 1, 21, 6)]
    d = server.get("/api/v1/errors/distribution").json()["items"]
    assert [(x["error_code"], x["occurrence_count"], x["affected_batches"]) for x in d] == \
        [("OUT_OF_RANGE", 5, 1), ("PATTERN_MISMATCH", 1, 0)], d
    # a reprocess replaces the batch's counts, never adds them twice
    assert server.post(f"/api/v1/batches/{bid}/reprocess").status_code == 200
    wait_for(lambda: server.get(f"/api/v1/batches/{bid}").json()["status"] == "completed")
    assert server.get("/api/v1/stats/kpis").json()["today"]["rows_received"] == 21
    d2 = server.get("/api/v1/errors/distribution").json()["items"]
    assert [(x["error_code"], x["occurrence_count"]) for x in d2] == \
        [("OUT_OF_RANGE", 5), ("PATTERN_MISMATCH", 1)]
    # a rebuild from the stored data gives the same totals
    before = server.get("/api/v1/stats/hourly").json()["items"]
    p = subprocess.run([BIN, "rollups", "rebuild", "--config", server.config_path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    after = server.get("/api/v1/stats/hourly").json()["items"]
    assert [(x["total_rows"], x["error_rows"], x["total_batches"]) for x in after] == \
        [(x["total_rows"], x["error_rows"], x["total_batches"]) for x in before]
    assert server.get("/api/v1/errors/distribution").json()["items"][0]["occurrence_count"] == 5
    # deleting the batch takes it out
    assert server.delete(f"/api/v1/batches/{bid}").status_code == 200
    assert server.get("/api/v1/stats/kpis").json()["today"]["rows_received"] == 1


@pytest.mark.sqlite_only("deletes the SQLite file under the running server")
def test_deleted_database_is_noticed(make_server, hook):
    extra = f"""
sentinel: {{interval_s: 1}}
alerts:
  receivers:
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/hook"}}
"""
    server = make_server(extra_yaml=extra, datasets_yaml=EVENTS)
    assert server.get("/health/ready").status_code == 200
    os.remove(server.db_path)  # the open descriptors keep answering: it must still be noticed
    r = wait_for(lambda: [b for b in hook.bodies if b["alert"]["rule"] == "store_unavailable"],
                 what="a store_unavailable alert")
    assert r[0]["alert"]["severity"] == "critical" and "deleted" in r[0]["alert"]["summary"]
    assert server.get("/health/ready").status_code == 503
    assert "sluice_store_up 0" in server.get("/metrics").text


def test_stuck_batch_auto_reset_is_limited(make_server):
    extra = """
batches: {workers: 0}
sentinel:
  interval_s: 1
  rules:
    stuck_batches: {after_s: 1, auto_reset: true, max_resets: 2}
"""
    server = make_server(extra_yaml=extra)
    r = requests.post(server.url + "/api/v1/datasets/judgments/batches",
                      data=b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-01\n",
                      headers={"Content-Type": "text/csv"}, timeout=30)
    bid = r.json()["batch_id"]
    with server.db(readonly=False) as db:
        db.execute("UPDATE batches SET status = 'staging', updated_ms = updated_ms - 3600000"
                   " WHERE id = ?", (bid,))

    def resets():
        h = server.get(f"/api/v1/batches/{bid}").json()["history"]
        return [x for x in h if x["detail"] == "sentinel auto-reset"]
    wait_for(lambda: len(resets()) == 2, timeout=30, what="two automatic resets")
    time.sleep(3)  # stuck again (no worker), but the limit is reached
    assert len(resets()) == 2
    assert server.get(f"/api/v1/batches/{bid}").json()["status"] == "uploaded"


def test_text_output_names_the_dataset_of_each_finding(make_server):
    """Two datasets with the same error rate: two lines, each naming its dataset (they were
    two identical "Error rate ..." lines)."""
    two = EVENTS + EVENTS.replace("name: ev", "name: ev2")
    server = make_server(extra_yaml="sentinel:\n  interval_s: 0\n  rules:\n"
                                    "    error_rate: {min_rows: 2}\n", datasets_yaml=two)
    for ds in ("ev", "ev2"):
        assert server.post_events(ds, '{"id":1}\n{"id":"x"}\n').status_code == 207
    p = subprocess.run([BIN, "sentinel", "--config", server.config_path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = [x.strip() for x in p.stdout.splitlines() if "error_rate" in x]
    assert lines == ["[warning] error_rate: Error rate of ev 50.0% > 10.0% threshold",
                     "[warning] error_rate: Error rate of ev2 50.0% > 10.0% threshold"], p.stdout
