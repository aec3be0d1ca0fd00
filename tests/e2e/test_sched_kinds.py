"""What each job kind does when it runs (issue 16, section 5): http (a request with its method,
headers and body; success by status), dlq_retry (the DLQ entries a schema fix makes valid are
stored and resolved), sentinel, rollups and housekeeping (each a run with its history), and a
wall-clock jump, logged and handled by the catch-up policy."""
import http.server
import json
import threading

import pytest

from conftest import free_port, wait_for
from test_sched import NEVER, ended, faketime_env, job, jobs_yaml, runs, utc, wait_run


class Upstream:
    """A local HTTP server that records each request and answers `status`."""

    def __init__(self, status=204):
        self.status, self.seen = status, []
        up = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                up.seen.append((self.command, self.path, dict(self.headers), self.rfile.read(n)))
                self.send_response(up.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            do_GET = do_POST = do_PUT = do_any

            def log_message(self, *a):
                pass
        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def trigger_and_wait(s, name):
    r = s.post(f"/api/v1/jobs/{name}/trigger")
    assert r.status_code == 202, r.text
    return wait_run(s, r.json()["run"]["id"])


def test_http_kind_sends_the_request_and_judges_the_status(make_server, upstream):
    url = f"http://127.0.0.1:{upstream.port}/hook?x=1"
    yaml = jobs_yaml(
        job("hook", NEVER, kind="http",
            args='{url: "%s", method: POST, body: "{\\"ping\\": 1}", '
                 'headers: ["Content-Type: application/json", "X-Token: abc"]}' % url),
        job("strict", NEVER, kind="http", args='{url: "%s", expect_status: ["200"]}' % url),
        job("down", NEVER, kind="http", args='{url: "http://127.0.0.1:%d/"}' % free_port()))
    s = make_server(extra_yaml=yaml)
    r = trigger_and_wait(s, "hook")
    assert r["state"] == "succeeded" and r["items"] == 204, r
    method, path, headers, body = upstream.seen[-1]
    assert (method, path, body) == ("POST", "/hook?x=1", b'{"ping": 1}')
    assert headers["X-Token"] == "abc" and headers["Content-Type"] == "application/json"
    r = trigger_and_wait(s, "strict")  # 204 is not the 200 it expects
    assert r["state"] == "failed" and "status 204, not an expected one" in r["error"], r
    assert upstream.seen[-1][0] == "GET"
    r = trigger_and_wait(s, "down")
    assert r["state"] == "failed" and "Couldn't connect" in r["error"], r


DS = """
  - name: t
    schema:
      type: object
      required: [a]
      properties:
        a: {type: integer, maximum: MAX}
"""


def test_dlq_retry_kind_stores_what_a_schema_fix_makes_valid(make_server):
    yaml = jobs_yaml(job("retry", NEVER, kind="dlq_retry", args="{dataset: t}"))
    s = make_server(extra_yaml=yaml, datasets_yaml=DS.replace("MAX", "10"))
    r = s.post_events("t", b'{"a": 5}\n{"a": 50}\n{"a": 70}\n')
    assert r.status_code in (200, 207), r.text
    open_ = s.get("/api/v1/dlq", params={"status": "open"}).json()["items"]
    assert len(open_) == 2
    # nothing is valid yet: the run succeeds, retries both, resolves none
    first = trigger_and_wait(s, "retry")
    assert first["state"] == "succeeded" and first["items"] == 0, first
    s.write_config(yaml, DS.replace("MAX", "100"))
    assert s.post("/api/v1/admin/reload").status_code == 200
    fixed = trigger_and_wait(s, "retry")
    assert fixed["state"] == "succeeded" and fixed["items"] == 2, fixed
    assert s.get("/api/v1/dlq", params={"status": "open"}).json()["items"] == []
    with s.db() as db:
        assert sorted(v for (v,) in db.query('SELECT a FROM "ds_t"')) == [5, 50, 70]


def test_sentinel_rollups_and_housekeeping_kinds_run_with_a_history(make_server):
    yaml = jobs_yaml(job("watch", NEVER, kind="sentinel"), job("roll", NEVER, kind="rollups"),
                     job("house", NEVER, kind="housekeeping"),
                     job("some", NEVER, kind="housekeeping", args="{tasks: [job_runs]}"))
    s = make_server(extra_yaml=yaml)
    s.post_events("judgments", b'{"case_number": "CASE-0000001", "amount": 1, "filed_date": "2024-01-01"}\n')
    for name in ("watch", "roll", "house", "some"):
        r = trigger_and_wait(s, name)
        assert r["state"] == "succeeded", (name, r["error"])
        assert r["items"] is not None and r["items"] >= 0
    # the rebuild covered the hour of the row pushed: one chunk at least
    assert runs(s, "roll")[-1]["items"] >= 1
    # the housekeeping job pruned the job history of every job by its keep_*: nothing to go yet
    assert len(runs(s, "watch")) == 1


def test_a_wall_clock_jump_is_logged_and_made_up_by_the_policy(make_server, tmp_path):
    # the server's clock read from a file the test rewrites (libfaketime), the monotonic clock
    # real: a step of the file is a jump of the host's clock
    clock = tmp_path / "clock"
    clock.write_text("@2026-03-10 10:00:30\n")
    env = faketime_env(utc("2026-03-10T10:00:30"))
    del env["FAKETIME"]
    env.update({"FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1"})
    yaml = jobs_yaml(job("hourly", '"0 * * * *"', extra="catchup: latest"),
                     job("poke", NEVER))
    s = make_server(extra_yaml=yaml, env=env)
    wait_for(lambda: s.get("/api/v1/jobs/hourly").json()["next_runs"][0]["utc"].startswith(
        "2026-03-10T11:00"), timeout=10, what="the first tick")
    clock.write_text("@2026-03-10 13:20:00\n")  # forward 3 h 20 m
    trigger_and_wait(s, "poke")  # wakes the scheduler now rather than at its heartbeat
    got = wait_for(lambda: [r for r in runs(s, "hourly") if ended(r)], timeout=20,
                   what="the made-up run")
    assert [(r["scheduled_at"], r["trigger"]) for r in got] == [("2026-03-10T13:00:00.000Z", "catchup")]
    assert wait_for(lambda: [l for l in s.log_lines() if l.get("msg", "").startswith(
        "the wall clock jumped forward")], timeout=10, what="the log line")[0]["by_s"] >= 11900
    clock.write_text("@2026-03-10 12:30:00\n")  # back 50 m: 13:00 must not run again
    trigger_and_wait(s, "poke")
    wait_for(lambda: [l for l in s.log_lines() if l.get("msg", "").startswith(
        "the wall clock jumped back")], timeout=20, what="the log line")
    clock.write_text("@2026-03-10 13:00:30\n")  # past 13:00 again, before 14:00
    trigger_and_wait(s, "poke")
    trigger_and_wait(s, "poke")  # a second tick after the first saw the clock
    assert len(runs(s, "hourly")) == 1
    assert json.dumps(s.get("/api/v1/jobs/hourly").json()["next_runs"][0]).find("14:00") > 0
