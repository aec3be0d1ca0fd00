"""Hostile and broken clients.  Each test first stores a few rows, then does something nasty;
afterwards the server must still answer /healthz and the rows stored before must still be
there (and nothing from the nasty request may be stored)."""
import base64
import json
import random
import re
import socket
import threading
import time

import pytest
import requests

EVENTS = "/api/v1/datasets/events/events"
LIMITS = ("limits: {max_body_bytes: 100000, max_row_bytes: 2000, max_json_depth: 8}\n"
          "http: {request_timeout: 2s, idle_timeout: 5s}\n")
SEED_IDS = [1, 2, 3]


# ---------------------------------------------------------------------------- helpers

@pytest.fixture
def hs(make_server):
    """A server with small limits and three rows already stored."""
    s = make_server(extra_yaml=LIMITS)
    r = post(s, "".join(json.dumps({"id": i, "name": f"seed{i}"}) + "\n" for i in SEED_IDS))
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    return s


def post(server, body, ctype="application/x-ndjson", headers=None, path=EVENTS, timeout=30):
    h = {} if ctype is None else {"Content-Type": ctype}
    h.update(headers or {})
    if isinstance(body, str):
        body = body.encode()
    return requests.post(server.url + path, data=body, headers=h, timeout=timeout)


def ids(server):
    with server.db() as db:
        return sorted(r[0] for r in db.query("SELECT id FROM ds_events"))


def assert_intact(server, also=()):
    """Alive, and exactly the seed rows (plus `also`) are stored."""
    assert server.proc.poll() is None, f"server exited {server.proc.returncode}:\n" \
                                       f"{server.logs()[-3000:]}"
    r = requests.get(server.url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert ids(server) == sorted(SEED_IDS + list(also))


def raw_exchange(server, data, wait=3.0, close_write=False):
    """Send raw bytes, read until close or `wait` seconds; returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=wait)
    buf, closed = b"", False
    try:
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        end = time.time() + wait
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
    finally:
        s.close()
    return buf, closed


def status_codes(raw):
    return [int(c) for c in re.findall(rb"HTTP/1\.[01] (\d{3})", raw)]


def first_body_json(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        return json.loads(body)
    except ValueError:
        return None


def err(r):
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def row_errors(r):
    return sorted((e["row"], e["code"], e["field"]) for e in r.json()["errors"])


# ---------------------------------------------------------------------------- truncated bodies

@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/json"])
def test_truncated_body_then_close(hs, ctype):
    rows = [{"id": 500 + i, "name": "partial"} for i in range(5)]
    body = ("\n".join(json.dumps(r) for r in rows) + "\n").encode() if "nd" in ctype \
        else json.dumps(rows).encode()
    head = (f"POST {EVENTS} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body) + 1000}\r\n\r\n").encode()
    # complete rows, then the client goes away
    raw, _ = raw_exchange(hs, head + body, wait=0.5, close_write=True)
    assert not any(200 <= c < 300 for c in status_codes(raw)), raw
    raw, _ = raw_exchange(hs, head + body[:len(body) // 2], wait=0.2)
    assert not any(200 <= c < 300 for c in status_codes(raw)), raw
    time.sleep(0.5)
    assert_intact(hs)


def test_truncated_chunked_body_then_close(hs):
    body = b'{"id": 600, "name": "p"}\n{"id": 601, "name": "p"}\n'
    req = (f"POST {EVENTS} HTTP/1.1\r\nHost: localhost\r\n"
           "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    req += b"%x\r\n" % len(body) + body + b"\r\n"    # no last chunk
    raw, _ = raw_exchange(hs, req, wait=0.5, close_write=True)
    assert not any(200 <= c < 300 for c in status_codes(raw)), raw
    time.sleep(0.5)
    assert_intact(hs)


def test_truncated_body_left_open_times_out(hs):
    body = b'{"id": 700, "name": "p"}\n'
    req = (f"POST {EVENTS} HTTP/1.1\r\nHost: localhost\r\n"
           f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body) + 50}\r\n\r\n"
           ).encode() + body
    t0 = time.time()
    raw, closed = raw_exchange(hs, req, wait=6)
    assert closed, "a request whose body never completes is still open after 6 s " \
                   "(http.request_timeout is 2s)"
    assert time.time() - t0 < 5.5
    assert status_codes(raw) in ([], [408]), raw
    assert_intact(hs)


# ---------------------------------------------------------------------------- invalid UTF-8

@pytest.mark.parametrize("body", [
    b'{"id": 800, "name": "caf\xe9"}',                  # Latin-1
    b'{"id": 800, "name": "\xc0\xaf"}',                 # overlong
    b'{"id": 800, "name": "\xed\xa0\x80"}',             # UTF-8-encoded surrogate
    b'{"id": 800, "na\xffme": "x"}',                    # in a key
    b'[{"id": 800, "name": "ok"}, {"id": 801, "name": "\xf5\x80\x80\x80"}]',
    b'{"id": 800, "name": "trunc\xe2\x82"}',
])
def test_invalid_utf8_json_body_is_400(hs, body):
    r = post(hs, body, ctype="application/json")
    assert r.status_code == 400, r.text
    assert err(r) == "INVALID_UTF8", r.text
    assert_intact(hs)


def test_invalid_utf8_ndjson_line_is_one_rejected_row(hs):
    bad = b'{"id": 811, "name": "caf\xe9"}'
    body = b'{"id": 810, "name": "ok"}\n' + bad + b'\n{"id": 812, "name": "ok"}\n'
    r = post(hs, body)
    assert r.status_code == 207, r.text
    j = r.json()
    assert (j["received"], j["accepted"], j["rejected"]) == (3, 2, 1), j
    assert row_errors(r) == [(2, "INVALID_UTF8", None)], j
    assert_intact(hs, also=[810, 812])
    # the DLQ keeps the original bytes, base64-encoded since they are not UTF-8
    d = requests.get(hs.url + "/api/v1/dlq", params={"dataset": "events",
                                                      "error_code": "INVALID_UTF8"}, timeout=10)
    assert d.status_code == 200, d.text
    items = [i for i in d.json()["items"] if i["ingest_id"] == j["ingest_id"]]
    assert len(items) == 1, d.text
    assert items[0]["row"] == 2 and items[0]["payload_base64"] is True, items[0]
    assert base64.b64decode(items[0]["payload"]).rstrip(b"\r\n") == bad, items[0]


# ---------------------------------------------------------------------------- sizes

def row_of_size(i, size):
    """An NDJSON line of exactly `size` bytes (without the newline)."""
    base = json.dumps({"id": i, "name": ""})
    line = json.dumps({"id": i, "name": "x" * (size - len(base))})
    assert len(line) == size
    return line.encode()


def test_row_just_over_max_row_bytes_is_row_too_large(hs):
    body = row_of_size(900, 2000) + b"\n" + row_of_size(901, 2001) + b"\n" \
        + row_of_size(902, 1999) + b"\n"
    r = post(hs, body)
    assert r.status_code == 207, r.text
    j = r.json()
    assert (j["received"], j["accepted"], j["rejected"]) == (3, 2, 1), j
    assert row_errors(r) == [(2, "ROW_TOO_LARGE", None)], j
    assert_intact(hs, also=[900, 902])


def test_long_string_row_is_row_too_large(hs):
    big = json.dumps({"id": 910, "name": "y" * 60000}).encode()   # under max_body_bytes
    r = post(hs, b'{"id": 911, "name": "ok"}\n' + big + b"\n")
    assert r.status_code == 207, r.text
    assert row_errors(r) == [(2, "ROW_TOO_LARGE", None)], r.text
    assert_intact(hs, also=[911])


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/json"])
def test_one_mib_string_gets_413_not_a_reset(hs, ctype):
    """A client that sends rows with 1 MiB strings (8 MiB in all, Content-Length known) reads
    a 413, every time: the server must not slam the connection shut while the body is still
    arriving (RFC 9112 9.6: the reset destroys the answer before the client reads it)."""
    rows = [{"id": 912 + k, "name": "z" * (1 << 20)} for k in range(8)]
    huge = ("".join(json.dumps(r) + "\n" for r in rows) if "nd" in ctype
            else json.dumps(rows)).encode()
    answers = []
    for _ in range(5):
        try:
            r = post(hs, huge, ctype=ctype)
            answers.append((r.status_code, err(r)))
        except requests.ConnectionError as e:
            answers.append(("no answer", type(e.args[0]).__name__ if e.args else repr(e)))
    assert answers == [(413, "BODY_TOO_LARGE")] * 5, answers
    assert_intact(hs)


def test_body_size_limit(hs):
    rows = []
    n = 1000
    while sum(len(x) + 1 for x in rows) < 100000 - 60:
        rows.append(json.dumps({"id": n, "name": "b"}).encode())
        n += 1
    body = b"\n".join(rows) + b"\n"
    pad = 100000 - len(body)
    body = body[:-1] + b" " * pad + b"\n"            # exactly max_body_bytes
    assert len(body) == 100000
    r = post(hs, body)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["accepted"] == len(rows)
    stored = list(range(1000, n))
    over = body[:-1] + b" \n"                        # one byte over
    r = post(hs, over)
    assert r.status_code == 413, r.text[:300]
    assert err(r) == "BODY_TOO_LARGE"
    assert_intact(hs, also=stored)


def test_body_too_large_chunked(hs):
    def gen():
        for k in range(30):                         # 30 x 10 000 bytes, no Content-Length
            yield (json.dumps({"id": 20000 + k, "name": "c" * 9950}) + "\n").encode()
    r = requests.post(hs.url + EVENTS, data=gen(), timeout=30,
                      headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 413, r.text[:300]
    assert err(r) == "BODY_TOO_LARGE"
    assert_intact(hs)


def test_body_too_large_refused_before_100_continue(hs):
    head = (f"POST {EVENTS} HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/x-ndjson\r\nContent-Length: 1048576\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    raw, _ = raw_exchange(hs, head, wait=3)
    assert status_codes(raw)[:1] == [413], raw[:300]
    assert b"100 Continue" not in raw
    assert_intact(hs)


# ---------------------------------------------------------------------------- nesting

def nested(depth):
    """A top-level object nested `depth` levels deep in all (the top-level object is 1)."""
    inner = '"leaf"'
    for _ in range(depth - 1):
        inner = '{"a": ' + inner + '}'
    return '{"id": 950, "deep": ' + inner + '}'


def test_nesting_limit(hs):
    r = post(hs, nested(8), ctype="application/json")
    assert r.status_code == 200, f"depth 8 with max_json_depth 8: {r.text}"
    r = post(hs, nested(9).replace("950", "951"), ctype="application/json")
    assert r.status_code == 400 and err(r) == "NESTING_TOO_DEEP", r.text
    for depth in (50, 10000):
        body = "[" * depth + "]" * depth
        r = post(hs, body, ctype="application/json")
        assert r.status_code == 400 and err(r) == "NESTING_TOO_DEEP", (depth, r.text)
    r = post(hs, "[" * 100000, ctype="application/json")
    assert r.status_code == 400 and err(r) in ("NESTING_TOO_DEEP", "MALFORMED_JSON"), r.text
    assert_intact(hs, also=[950])


def test_nesting_too_deep_in_ndjson_line(hs):
    deep = ('{"id": 960, "x": ' + "[" * 500 + "]" * 500 + "}").encode()
    r = post(hs, b'{"id": 961}\n' + deep + b"\n")
    assert r.status_code == 207, r.text
    (row, code, field), = row_errors(r)
    assert row == 2 and code in ("NESTING_TOO_DEEP", "MALFORMED_JSON") and field is None, r.text
    assert_intact(hs, also=[961])


# ---------------------------------------------------------------------------- media types

@pytest.mark.parametrize("ctype", [None, "text/plain", "application/xml",
                                   "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=xyz", "application/jsonx",
                                   "application/octet-stream", "json", ""])
def test_wrong_media_type_is_415(hs, ctype):
    r = post(hs, b'{"id": 970, "name": "x"}\n', ctype=ctype)
    assert r.status_code == 415, (ctype, r.status_code, r.text)
    assert err(r) == "UNSUPPORTED_MEDIA_TYPE"
    assert_intact(hs)


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "application/ndjson",
                                   "application/x-ndjson; charset=utf-8",
                                   "application/json;charset=UTF-8", "Application/JSON"])
def test_accepted_media_types(hs, ctype):
    r = post(hs, b'{"id": 971, "name": "x"}\n', ctype=ctype)
    assert r.status_code == 200, (ctype, r.status_code, r.text)
    assert_intact(hs, also=[971])


# ---------------------------------------------------------------------------- garbage

@pytest.mark.parametrize("ctype", ["application/json", "application/x-ndjson"])
def test_binary_garbage_body(hs, ctype):
    rng = random.Random(1234)
    for size in (1, 17, 4096, 60000):
        body = bytes(rng.randrange(256) for _ in range(size))
        r = post(hs, body, ctype=ctype)
        assert r.status_code in (400, 422), (size, r.status_code, r.text[:300])
        if r.status_code == 422:
            codes = {e["code"] for e in r.json()["errors"]}
            assert codes <= {"MALFORMED_JSON", "INVALID_UTF8", "ROW_TOO_LARGE",
                             "NOT_AN_OBJECT", "NESTING_TOO_DEEP"}, codes
        else:
            assert err(r) in ("MALFORMED_JSON", "INVALID_UTF8", "BAD_REQUEST",
                              "NESTING_TOO_DEEP"), r.text
    # NUL bytes
    r = post(hs, b'{"id": 980, "name": "a\x00b"}', ctype="application/json")
    assert r.status_code == 400, r.text
    r = post(hs, b"\x00" * 1000, ctype=ctype)
    assert r.status_code in (400, 422), r.text
    assert_intact(hs)


def test_garbage_instead_of_http(hs):
    rng = random.Random(99)
    for _ in range(5):
        raw, _ = raw_exchange(hs, bytes(rng.randrange(256) for _ in range(3000)), wait=1)
        assert not any(200 <= c < 300 for c in status_codes(raw)), raw[:200]
    raw, closed = raw_exchange(hs, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
                               wait=2)                      # a TLS ClientHello
    assert closed and not any(200 <= c < 300 for c in status_codes(raw)), raw[:200]
    assert_intact(hs)


# ---------------------------------------------------------------------------- headers

@pytest.mark.parametrize("header", [b"X-Foo: a\x00b", b"X-Request-Id: a\x00b",
                                    b"X-Request-Id: a\rb", b"X-Foo: \x00"])
def test_nul_or_cr_in_header_value(hs, header):
    req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n\r\n"
    raw, _ = raw_exchange(hs, req, wait=2)
    codes = status_codes(raw)
    assert codes, "no answer"
    # RFC 9110 5.5: reject the message, or replace the NUL/CR with SP
    assert codes[0] in (400, 200), raw[:300]
    head = raw.partition(b"\r\n\r\n")[0]
    assert b"\x00" not in head and b"a\rb" not in head, head
    assert_intact(hs)


def test_very_many_headers(hs):
    few = b"".join(b"X-H%d: v\r\n" % i for i in range(400))        # ~4.4K, under 16K
    raw, _ = raw_exchange(hs, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + few + b"\r\n")
    assert status_codes(raw)[:1] in ([200], [431]), raw[:300]
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))      # ~60K
    raw, _ = raw_exchange(hs, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")
    assert status_codes(raw)[:1] == [431], raw[:300]
    # one enormous header value, then close
    raw, _ = raw_exchange(hs, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: "
                          + b"b" * 200000 + b"\r\n\r\n", wait=2)
    assert status_codes(raw)[:1] in ([431], []), raw[:300]
    assert_intact(hs)


# ---------------------------------------------------------------------------- slow clients

def slow_send(server, data, interval, results, idx, budget=8.0):
    """Send `data` byte by byte, `interval` seconds apart; record (closed, elapsed, bytes)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=budget)
    t0 = time.time()
    got = b""
    closed = False
    try:
        for b in data:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(interval)
            try:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                got += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
            if time.time() - t0 > budget:
                break
        if not closed:
            s.settimeout(max(0.1, budget - (time.time() - t0)))
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    got += chunk
            except (socket.timeout, ConnectionResetError) as e:
                closed = isinstance(e, ConnectionResetError)
    finally:
        s.close()
    results[idx] = (closed, time.time() - t0, got)


def test_slowloris(hs):
    """30 connections trickling a request one byte every 0.2 s: each is cut off by
    request_timeout (2 s), and meanwhile other clients are served promptly."""
    head = (b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-Slow-%d: %s\r\n" % (i, b"z" * 10) for i in range(20)) + b"\r\n")
    n = 30
    results = [None] * n
    threads = [threading.Thread(target=slow_send, args=(hs, head, 0.2, results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    worst = 0.0
    for _ in range(10):
        t0 = time.time()
        r = requests.get(hs.url + "/healthz", timeout=10)
        worst = max(worst, time.time() - t0)
        assert r.status_code == 200
        r = post(hs, b'{"id": 990, "name": "fast"}\n', headers={"Idempotency-Key": "fast-990"})
        assert r.status_code == 200, r.text
        time.sleep(0.1)
    for t in threads:
        t.join(15)
    assert worst < 1.0, f"/healthz took {worst:.2f}s while slow clients were connected"
    for closed, elapsed, got in results:
        assert closed, f"slow client not cut off after {elapsed:.1f}s"
        assert elapsed < 5, f"slow client cut off only after {elapsed:.1f}s (request_timeout 2s)"
        assert status_codes(got) in ([], [408]), got[:200]
    assert_intact(hs, also=[990])


def test_slow_body(hs):
    body = b'{"id": 995, "name": "slow body"}\n'
    head = (f"POST {EVENTS} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        s.sendall(head)
        results = [None]
        t0 = time.time()
        closed = False
        got = b""
        for b in body:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.3)
            try:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                got += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
            if time.time() - t0 > 8:
                break
        results[0] = (closed, time.time() - t0, got)
    finally:
        s.close()
    closed, elapsed, got = results[0]
    assert closed, "a body trickled over 10 s was not cut off (request_timeout 2s)"
    assert elapsed < 5, elapsed
    assert not any(200 <= c < 300 for c in status_codes(got)), got
    assert status_codes(got) in ([], [408]), got[:200]
    assert_intact(hs)
