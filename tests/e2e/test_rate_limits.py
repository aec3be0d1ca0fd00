"""Per-client rate limits (issue 13, section 3): a client over `rate_limits` gets 429
RATE_LIMITED with Retry-After, decided when its headers are in (its body is never read,
nothing of it is stored), other clients go on, and the limit recovers after Retry-After.
A client is its API key, its JWT's sub, or its address (X-Forwarded-For only from
`rate_limits.trusted_proxies`)."""
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import BIN
from test_auth import auth_yaml, bearer, cli_key, keys, tok  # noqa: F401 (keys: a fixture)
from test_http_conformance import Raw, error_code, get_req, ndjson_post

# A token every 2 s, 3 at once: a test's few quick requests empty the bucket long before
# it refills, also under ASan.
RATE = "rate_limits: {requests_per_s: 0.5, burst: 3}\n"
NO_DEV_AUTH = "auth: {dev_bypass: false}\n"
EVENTS = "/api/v1/datasets/judgments/events"


def row(n):
    return {"case_number": f"CASE-{n:07d}", "amount": 1, "filed_date": "2024-01-01"}


def stored_cases(server):
    with server.db() as db:
        if not db.table_exists("ds_judgments"):
            return []
        return sorted(r[0] for r in db.query("SELECT case_number FROM ds_judgments"))


def metric(server, line_prefix):
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in /metrics")


def assert_limited(r):
    assert r.status_code == 429, (r.status_code, r.text)
    assert error_code(r) == "RATE_LIMITED", r.text
    assert "rate_limits.requests_per_s" in r.json()["error"]["message"], r.text
    ra = r.headers.get("Retry-After")
    assert ra and re.fullmatch(r"[0-9]+", ra), r.headers
    # whole seconds, rounded up: a token comes every 2 s
    assert 1 <= int(ra) <= 2, ra
    return int(ra)


@pytest.fixture
def keyed(make_server):
    """A server with API keys only (no dev bypass) and RATE; two operator keys."""
    s = make_server(extra_yaml=RATE + NO_DEV_AUTH)
    a = cli_key(s, "producer-a", "operator")["key"]
    b = cli_key(s, "producer-b", "operator")["key"]
    return s, a, b


def test_a_key_over_its_rate_is_429_stores_nothing_and_recovers(keyed):
    s, a, b = keyed
    for n in range(1, 4):  # the burst
        r = s.post_events("judgments", row(n), headers=bearer(a))
        assert r.status_code == 200, r.text
    refused = [s.post_events("judgments", row(n), headers=bearer(a)) for n in (4, 5)]
    waits = [assert_limited(r) for r in refused]
    # another key pushing at the same time is not limited
    for n in range(11, 14):
        r = s.post_events("judgments", row(n), headers=bearer(b))
        assert r.status_code == 200, r.text
    assert stored_cases(s) == [row(n)["case_number"] for n in (1, 2, 3, 11, 12, 13)]
    assert metric(s, 'sluice_rate_limited_total{class="ingest"}') == 2
    assert metric(s, 'sluice_rate_limited_total{class="read"}') == 0
    # after Retry-After the key may push again
    time.sleep(waits[-1])
    r = s.post_events("judgments", row(6), headers=bearer(a))
    assert r.status_code == 200, r.text
    assert row(6)["case_number"] in stored_cases(s)
    assert row(4)["case_number"] not in stored_cases(s)
    # the refusals are not in the audit log (a flood of them would be a flood of writes);
    # records are written by a writer job just after the answers
    admin = bearer(cli_key(s, "auditor", "admin")["key"])
    for _ in range(5):  # the admin key has a bucket of its own, 3 at once, one per 2 s
        time.sleep(0.3)
        pushes = s.get("/api/v1/audit?method=POST&limit=100", headers=admin).json()["items"]
        if len(pushes) >= 7:
            break
        time.sleep(2)
    assert sorted(e["status"] for e in pushes) == [200] * 7, pushes


FRAMING = {"plain": "Content-Length: 50000000\r\n",
           "expect-100-continue": "Content-Length: 50000000\r\nExpect: 100-continue\r\n",
           "chunked": "Transfer-Encoding: chunked\r\n"}


@pytest.mark.parametrize("framing", list(FRAMING))
def test_a_refused_body_is_never_read(keyed, framing):
    """The 429 comes back while the body (50 MB announced, or chunks) has not been sent,
    and no 100 Continue before it; the connection is then closed, since its body was not
    read."""
    s, a, _ = keyed
    for _ in range(3):
        assert s.get("/api/v1/datasets", headers=bearer(a)).status_code == 200
    head = (f"POST {EVENTS} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {a}\r\n"
            f"Content-Type: application/x-ndjson\r\n{FRAMING[framing]}\r\n").encode()
    with Raw(s, timeout=10) as c:
        c.send(head)
        r = c.response(timeout=5)  # the first answer, 1xx included
        assert r.status == 429, r
        assert r.json()["error"]["code"] == "RATE_LIMITED", r
        assert r.header("retry-after") in ("1", "2"), r
        assert r.header("connection") == "close", r
        assert c.closed_within(5), "the connection stays open after a refused body"
    assert stored_cases(s) == []
    # the same request with the body, sent after the wait, is taken
    time.sleep(int(r.header("retry-after")))
    assert s.post_events("judgments", row(1), headers=bearer(a)).status_code == 200


def test_a_refused_upload_spools_nothing(keyed):
    """A batch upload streams its body to a file: refused, it opens none and records none."""
    s, a, b = keyed
    for _ in range(3):
        assert s.get("/api/v1/batches", headers=bearer(a)).status_code == 200
    csv = b"case_number,amount,filed_date\n" + b"CASE-0000001,1,2024-01-01\n" * 1000
    r = requests.post(f"{s.url}/api/v1/datasets/judgments/batches", data=csv,
                      headers={**bearer(a), "Content-Type": "text/csv"}, timeout=30)
    assert_limited(r)
    assert r.headers.get("Connection") == "close", r.headers
    assert s.get("/api/v1/batches", headers=bearer(b)).json()["items"] == []
    assert s.batch_file_ids() == []
    spool = os.path.join(s.data_dir, "batches")
    assert not os.path.isdir(spool) or os.listdir(spool) == [], os.listdir(spool)


def test_jwt_subjects_have_their_own_buckets(make_server, keys):  # noqa: F811
    s = make_server(extra_yaml=auth_yaml(keys) + "rate_limits: {requests_per_s: 0.5, burst: 1}\n")
    alice, bob = bearer(tok(keys, sub="alice")), bearer(tok(keys, sub="bob"))
    assert s.get("/api/v1/datasets", headers=alice).status_code == 200
    assert_limited(s.get("/api/v1/datasets", headers=alice))
    # a second token of the same subject is the same client
    assert_limited(s.get("/api/v1/datasets", headers=bearer(tok(keys, sub="alice", iat=int(time.time()) - 5))))
    assert s.get("/api/v1/datasets", headers=bob).status_code == 200
    # a refused credential takes nothing from anybody's bucket (nobody can spend alice's)
    assert s.get("/api/v1/datasets", headers=bearer("slk_nothing")).status_code == 401
    assert metric(s, 'sluice_rate_limited_total{class="read"}') == 2


def test_pipelined_bodiless_requests_keep_the_connection(make_server):
    """Without auth (dev bypass) the client is its address. A 429 to a request without
    a body keeps the connection; health probes are never limited."""
    s = make_server(extra_yaml="rate_limits: {requests_per_s: 0.5, burst: 2}\n")
    with Raw(s) as c:
        c.send(get_req("/api/v1/datasets") * 3 + get_req("/health/ready")
               + get_req("/api/v1/datasets/judgments"))
        got = [c.final_response() for _ in range(5)]
        assert [r.status for r in got] == [200, 200, 429, 200, 429], got
        assert all(r.header("connection") != "close" for r in got), got
        assert got[2].json()["error"]["code"] == "RATE_LIMITED"
        c.send(get_req("/healthz"))
        assert c.final_response().status == 200


def test_pipelined_posts_refused_one_closes_the_connection(make_server):
    """Three pipelined pushes, a burst of two: the third is 429 with Connection: close
    and the connection ends (what was pipelined after it is not taken)."""
    s = make_server(extra_yaml="rate_limits: {requests_per_s: 0.5, burst: 2}\n")
    body = lambda n: (f'{{"case_number": "CASE-{n:07d}", "amount": 1, '  # noqa: E731
                      f'"filed_date": "2024-01-01"}}\n').encode()
    with Raw(s) as c:
        c.send(b"".join(ndjson_post(body(n), path=EVENTS) for n in (1, 2, 3, 4)))
        got = [c.final_response() for _ in range(3)]
        assert [r.status for r in got] == [200, 200, 429], got
        assert got[2].header("connection") == "close", got
        assert got[2].header("retry-after") in ("1", "2"), got
        assert c.closed_within(5)
    assert stored_cases(s) == ["CASE-0000001", "CASE-0000002"]


def test_forwarded_for_only_from_trusted_proxies(make_server):
    trusted = make_server(extra_yaml="rate_limits: {requests_per_s: 0.5, burst: 1, "
                                     "trusted_proxies: ['127.0.0.1']}\n")
    xff = lambda v: {"X-Forwarded-For": v}  # noqa: E731
    assert trusted.get("/api/v1/datasets", headers=xff("203.0.113.7")).status_code == 200
    assert_limited(trusted.get("/api/v1/datasets", headers=xff("203.0.113.7")))
    assert trusted.get("/api/v1/datasets", headers=xff("203.0.113.8")).status_code == 200
    # a chain: the client is the last address that is not a trusted proxy
    assert trusted.get("/api/v1/datasets",
                       headers=xff("10.9.9.9, 198.51.100.1, 127.0.0.1")).status_code == 200
    assert_limited(trusted.get("/api/v1/datasets", headers=xff("198.51.100.1")))
    # without the header, the proxy's own address is the client
    assert trusted.get("/api/v1/datasets").status_code == 200

    plain = make_server(extra_yaml="rate_limits: {requests_per_s: 0.5, burst: 1}\n")
    assert plain.get("/api/v1/datasets", headers=xff("203.0.113.7")).status_code == 200
    # not trusted: the header is ignored, both are 127.0.0.1
    assert_limited(plain.get("/api/v1/datasets", headers=xff("203.0.113.8")))


@pytest.mark.parametrize("bad, why", [
    ("requests_per_s: -1", "rate_limits.requests_per_s"),
    ("burst: lots", "rate_limits.burst"),
    ("max_clients: 10", "rate_limits.max_clients"),
    ("trusted_proxies: [proxy.internal]", "'proxy.internal' is not an IP address"),
])
def test_bad_options_are_refused_at_start(make_server, bad, why):
    s = make_server(start=False)
    s.write_config(extra_yaml=f"rate_limits: {{{bad}}}\n")
    r = subprocess.run([BIN, "serve", "--config", s.config_path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and why in r.stderr and "sluice.yaml:" in r.stderr, r.stderr


def test_a_proxy_is_matched_in_any_spelling(make_server):
    """A listed proxy is compared with the peer's address as the server prints it: on an
    IPv6 listener, `0:0:0:0:0:0:0:1` is the peer `::1`."""
    s = make_server(start=False)
    s.write_config(extra_yaml="rate_limits: {requests_per_s: 0.5, burst: 1, "
                              "trusted_proxies: ['0:0:0:0:0:0:0:1']}\n")
    with open(s.config_path) as f:
        text = f.read().replace("listen: 127.0.0.1:", "listen: '[::1]:")
    text = re.sub(r"(listen: '\[::1\]:[0-9]+)", r"\1'", text)
    with open(s.config_path, "w") as f:
        f.write(text)
    s.url = f"http://[::1]:{s.port}"
    s.start()
    xff = lambda v: {"X-Forwarded-For": v}  # noqa: E731
    assert s.get("/api/v1/datasets", headers=xff("2001:db8::7")).status_code == 200
    assert_limited(s.get("/api/v1/datasets", headers=xff("2001:db8::7")))
    assert s.get("/api/v1/datasets", headers=xff("2001:db8::8")).status_code == 200


def test_off_by_default(make_server):
    s = make_server()
    codes = [s.get("/api/v1/datasets").status_code for _ in range(30)]
    assert codes == [200] * 30
    assert metric(s, 'sluice_rate_limited_total{class="read"}') == 0


def test_a_reload_changes_the_rate(make_server):
    s = make_server(extra_yaml="rate_limits: {requests_per_s: 0.5, burst: 1}\n")
    assert s.get("/api/v1/datasets").status_code == 200
    assert_limited(s.get("/api/v1/datasets"))
    s.write_config("rate_limits: {requests_per_s: 1000}\n")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while s.get("/api/v1/datasets").status_code != 200:
        assert time.time() < deadline, "the new rate did not apply after SIGHUP"
        time.sleep(0.1)
    # burst 0: a second's worth (1000)
    codes = [s.get("/api/v1/datasets").status_code for _ in range(20)]
    assert codes == [200] * 20, codes
