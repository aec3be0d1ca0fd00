"""HTTP/1.1 server rules (RFC 9112 / RFC 9110) as the contract states them
(docs/api-contract-draft.md, "HTTP rules"), on raw sockets, plus the llhttp request cases of
../shared/suites/llhttp-request-tests through ../shared/tools/run_http_cases.py."""
import json
import os
import re
import socket
import subprocess
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "..", "shared", "tools", "run_http_cases.py")
LLHTTP_SUITE = os.path.join(ROOT, "..", "shared", "suites", "llhttp-request-tests")
PYTHON = "/usr/bin/python3"

SHORT_TIMEOUTS = "http: {request_timeout: 1s, idle_timeout: 2s}\n"
EVENTS = "/api/v1/datasets/events/events"


# ---------------------------------------------------------------------------- raw client

class Response:
    def __init__(self, version, status, reason, headers, body, head):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body, self.head = headers, body, head

    def header(self, name):
        vals = self.headers.get(name.lower())
        return vals[0] if vals else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.head[:200]!r} body={self.body[:200]!r}>"


class Raw:
    """One TCP connection with a byte buffer and a small HTTP/1.1 response reader."""

    def __init__(self, server, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += chunk

    def _until(self, delim, deadline):
        while delim not in self.buf:
            self._fill(deadline)
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, timeout=10.0, head_only=False):
        """Read one response (1xx included). Raises EOFError if the connection closes first,
        socket.timeout if nothing complete arrives in time."""
        deadline = time.time() + timeout
        head = self._until(b"\r\n\r\n", deadline)
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers.setdefault(k.strip().lower().decode("latin-1"), []).append(
                v.strip().decode("latin-1"))
        status = int(m.group(2))
        body = b""
        if head_only or 100 <= status < 200 or status in (204, 304):
            pass
        elif "chunked" in (headers.get("transfer-encoding") or [""])[0].lower():
            while True:
                size = int(self._until(b"\r\n", deadline).split(b";")[0].strip(), 16)
                if size == 0:
                    while self._until(b"\r\n", deadline) != b"\r\n":
                        pass
                    break
                body += self._exact(size, deadline)
                self._exact(2, deadline)
        elif "content-length" in headers:
            body = self._exact(int(headers["content-length"][0]), deadline)
        else:
            try:
                while True:
                    self._fill(deadline)
            except EOFError:
                body, self.buf = self.buf, b""
        return Response(m.group(1).decode(), status, m.group(3).decode("latin-1"), headers,
                        body, head)

    def final_response(self, timeout=10.0):
        """Skip interim 1xx responses."""
        while True:
            r = self.response(timeout)
            if r.status >= 200:
                return r

    def closed_within(self, seconds):
        """True when the peer closes (EOF/RST) within `seconds` with no further bytes;
        False on a timeout. Bytes that arrive meanwhile are kept in self.buf."""
        deadline = time.time() + seconds
        try:
            while time.time() < deadline:
                self._fill(deadline)
        except EOFError:
            return True
        except socket.timeout:
            return False
        return False


def one(server, data, timeout=10.0):
    """Send raw bytes on a fresh connection, return the first final response."""
    with Raw(server, timeout) as c:
        c.send(data)
        return c.final_response(timeout)


def get_req(path="/healthz", version="HTTP/1.1", extra=b""):
    return f"GET {path} {version}\r\nHost: localhost\r\n".encode() + extra + b"\r\n"


def ndjson_post(body, extra=b"", path=EVENTS):
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n").encode() \
        + extra + b"\r\n" + body


def error_code(resp):
    try:
        return resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def db_ids(server, table="ds_events"):
    with server.db() as db:
        if not db.table_exists(table):
            return []
        return sorted(r[0] for r in db.query(f"SELECT id FROM {table}"))


# ---------------------------------------------------------------------------- llhttp suite

def test_llhttp_request_cases(server):
    cmd = [PYTHON, TOOL, LLHTTP_SUITE, "127.0.0.1", str(server.port), "-j", "8"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    out = p.stdout.strip().splitlines()
    fails = [line for line in out if line.startswith("FAIL")]
    assert p.returncode == 0, p.stderr[-2000:]
    assert out, "no output from run_http_cases.py"
    m = re.match(r"(\d+) passed, (\d+) failed$", out[-1])
    assert m, f"unexpected last line {out[-1]!r}"
    assert int(m.group(1)) == 116 and m.group(2) == "0", \
        out[-1] + "\n" + "\n".join(fails) + "\n" + "\n".join(out[-2:-1])
    assert server.proc.poll() is None
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


# ---------------------------------------------------------------------------- RFC 9112 rules

def test_http11_without_host_is_400(server):
    r = one(server, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert r.status == 400, r
    # HTTP/1.0 does not need Host
    r = one(server, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert r.status == 200, r


def test_two_host_headers_is_400(server):
    r = one(server, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert r.status == 400, r


@pytest.mark.parametrize("line", [b"X-Empty:", b"X-Empty: ", b"X-Empty:   \t"])
def test_empty_header_value_is_fine(server, line):
    # RFC 9110 5.5: a field value may be empty; the OWS around it is not obs-fold
    r = one(server, get_req(extra=line + b"\r\n"))
    assert r.status == 200, r


def test_content_length_with_transfer_encoding_is_400_and_closes(server):
    body = b'{"id":1}\n'
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    req = (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/x-ndjson\r\nContent-Length: " +
           str(len(chunked)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    with Raw(server) as c:
        # a second request follows: it must not be answered (the connection is closed)
        c.send(req + get_req())
        r = c.final_response()
        assert r.status == 400, r
        assert c.closed_within(3), f"connection left open after the 400; extra bytes {c.buf!r}"
        assert b"HTTP/1.1" not in c.buf, f"answered after the 400: {c.buf!r}"
    assert 1 not in db_ids(server), "the ambiguous body was stored"


def test_whitespace_before_colon_is_400(server):
    r = one(server, get_req(extra=b"X-Foo : bar\r\n"))
    assert r.status == 400, r
    r = one(server, b"GET /healthz HTTP/1.1\r\nHost : localhost\r\n\r\n")
    assert r.status == 400, r


@pytest.mark.parametrize("name", [b"X(Foo)", b"X{Foo}", b"X\"Foo", b"X@Foo", b"X/Foo", b"X[1]",
                                  b"X=Foo", b"\xc3\xa9t\xc3\xa9"])
def test_non_token_header_name_is_400(server, name):
    r = one(server, get_req(extra=name + b": bar\r\n"))
    assert r.status == 400, r


def test_unknown_method_is_501(server):
    r = one(server, b"FOO / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    # the contract says 501; a parser that refuses the method outright answers 400
    assert r.status in (501, 400), r
    assert r.status == 400 or error_code(r) == "NOT_IMPLEMENTED", r
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate, chunked"])
def test_transfer_coding_other_than_chunked_is_501(server, coding):
    req = (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: " + coding +
           b"\r\n\r\n" + b"5\r\nhello\r\n0\r\n\r\n")
    r = one(server, req)
    assert r.status == 501, r
    assert error_code(r) == "NOT_IMPLEMENTED", r


def test_transfer_coding_over_two_headers_is_501(server):
    # RFC 9110 5.3: two Transfer-Encoding lines are one list "gzip, chunked"
    req = (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: gzip\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + b"5\r\nhello\r\n0\r\n\r\n")
    r = one(server, req)
    assert r.status == 501, r


@pytest.mark.parametrize("coding", [b"gzip", b"deflate", b"identity"])
def test_transfer_coding_without_final_chunked_is_refused_and_closes(server, coding):
    # The contract says 501 for a coding other than chunked; RFC 9112 6.3 says a request
    # whose final coding is not chunked MUST get 400 and a close (its length is unknown).
    # Either refusal is accepted; the connection must be closed and nothing stored.
    req = (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: " + coding +
           b"\r\n\r\n" + b'{"id": 3}\n')
    with Raw(server) as c:
        c.send(req)
        r = c.final_response()
        assert r.status in (400, 501), r
        assert c.closed_within(3), "connection left open after a body of unknown length"
    assert 3 not in db_ids(server)


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/1.2", "HTTP/1.9", "HTTP/3.0"])
def test_unsupported_version_is_505(server, version):
    r = one(server, f"GET /healthz {version}\r\nHost: localhost\r\n\r\n".encode())
    assert r.status == 505, r
    assert error_code(r) == "VERSION_NOT_SUPPORTED", r


def test_keep_alive_two_requests_one_socket(server):
    with Raw(server) as c:
        c.send(get_req())
        r1 = c.final_response()
        assert r1.status == 200 and r1.json() == {"status": "ok"}, r1
        c.send(get_req("/api/v1/datasets/events"))
        r2 = c.final_response()
        assert r2.status == 200, r2
        assert r2.json()["name"] == "events", r2


def test_pipelining_three_requests_answered_in_order(server):
    reqs = (get_req("/healthz", extra=b"X-Request-Id: first\r\n")
            + get_req("/no/such/path", extra=b"X-Request-Id: second\r\n")
            + ndjson_post(b'{"id": 7, "name": "x"}\n', extra=b"X-Request-Id: third\r\n"))
    with Raw(server) as c:
        c.send(reqs)
        got = [c.final_response() for _ in range(3)]
    assert [r.status for r in got] == [200, 404, 200], got
    assert [r.header("x-request-id") for r in got] == ["first", "second", "third"], got
    assert got[2].json()["accepted"] == 1
    assert db_ids(server) == [7]


def test_http10_closes_after_the_answer(server):
    with Raw(server) as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.final_response()
        assert r.status == 200, r
        assert c.closed_within(3), "HTTP/1.0 connection without keep-alive left open"


def test_http10_keep_alive_stays_open(server):
    with Raw(server) as c:
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.final_response()
        assert r.status == 200, r
        assert r.body, r
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.final_response()
        assert r.status == 200, r


def test_http11_connection_close_closes(server):
    with Raw(server) as c:
        c.send(get_req(extra=b"Connection: close\r\n"))
        r = c.final_response()
        assert r.status == 200, r
        assert c.closed_within(3), "Connection: close left the connection open"


def test_expect_100_continue(server):
    body = b'{"id": 100, "name": "continued"}\n'
    head = ndjson_post(body, extra=b"Expect: 100-continue\r\n")[:-len(body)]
    with Raw(server) as c:
        c.send(head)
        interim = c.response(timeout=5)
        assert interim.status == 100, interim
        assert interim.head.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        c.send(body)
        r = c.final_response()
        assert r.status == 200, r
        assert r.json()["accepted"] == 1
    assert db_ids(server) == [100]


def test_expect_other_is_417(server):
    body = b'{"id": 101}\n'
    r = one(server, ndjson_post(body, extra=b"Expect: something-else\r\n"))
    assert r.status == 417, r
    assert error_code(r) == "EXPECTATION_FAILED", r
    assert 101 not in db_ids(server)


def test_headers_over_16k_are_431(server):
    r = one(server, get_req(extra=b"X-Big: " + b"a" * 20000 + b"\r\n"))
    assert r.status == 431, r
    many = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 40) for i in range(500))  # ~25K
    r = one(server, get_req(extra=many))
    assert r.status == 431, r
    # a request just under the limit is fine
    r = one(server, get_req(extra=b"X-Big: " + b"a" * 12000 + b"\r\n"))
    assert r.status == 200, r
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


def test_request_id_echoed_or_generated(server):
    r = requests.get(server.url + "/healthz", headers={"X-Request-Id": "test-req-42"}, timeout=10)
    assert r.headers.get("X-Request-Id") == "test-req-42"
    r = requests.get(server.url + "/no/such/path", headers={"X-Request-Id": "abc"}, timeout=10)
    assert r.status_code == 404 and r.headers.get("X-Request-Id") == "abc"
    a = requests.get(server.url + "/healthz", timeout=10).headers.get("X-Request-Id")
    b = requests.get(server.url + "/healthz", timeout=10).headers.get("X-Request-Id")
    assert a and b and a != b, (a, b)
    # also on error answers produced by the HTTP layer
    r = one(server, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert r.status == 400 and r.header("x-request-id"), r


def test_unfinished_headers_time_out(make_server):
    server = make_server(extra_yaml=SHORT_TIMEOUTS)
    with Raw(server) as c:
        t0 = time.time()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        closed = c.closed_within(6)
        took = time.time() - t0
        assert closed, "headers that never finish: connection still open after 6 s"
        assert 0.5 <= took <= 5, f"closed after {took:.2f}s (request_timeout 1s)"
        codes = [int(x) for x in re.findall(rb"HTTP/1\.[01] (\d{3})", c.buf)]
        assert codes in ([], [408]), c.buf


def test_unfinished_body_times_out(make_server):
    server = make_server(extra_yaml=SHORT_TIMEOUTS)
    body = b'{"id": 55}\n'
    with Raw(server) as c:
        t0 = time.time()
        c.send(ndjson_post(body)[:-len(body)].replace(
            b"Content-Length: %d" % len(body), b"Content-Length: 1000") + body)
        closed = c.closed_within(6)
        took = time.time() - t0
        assert closed, "body that never finishes: connection still open after 6 s"
        assert took <= 5, took
        codes = [int(x) for x in re.findall(rb"HTTP/1\.[01] (\d{3})", c.buf)]
        assert codes in ([], [408]), c.buf
    assert 55 not in db_ids(server)


def test_idle_keep_alive_connection_is_closed(make_server):
    server = make_server(extra_yaml=SHORT_TIMEOUTS)
    with Raw(server) as c:
        c.send(get_req())
        assert c.final_response().status == 200
        t0 = time.time()
        closed = c.closed_within(6)
        took = time.time() - t0
        assert closed, "idle keep-alive connection still open 6 s after the answer"
        assert 1.5 <= took <= 5, f"closed after {took:.2f}s (idle_timeout 2s)"
        assert c.buf == b"", f"unexpected bytes on an idle connection: {c.buf!r}"


def test_connection_in_use_is_not_idle(make_server):
    server = make_server(extra_yaml=SHORT_TIMEOUTS)
    with Raw(server) as c:
        for _ in range(5):  # 5 requests 0.8 s apart: 4 s in all, more than idle_timeout
            c.send(get_req())
            assert c.final_response().status == 200
            time.sleep(0.8)


def test_parse_error_is_400_and_closes(server):
    with Raw(server) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header Line\r\n\r\n"
               + get_req())
        r = c.final_response()
        assert r.status == 400, r
        assert c.closed_within(3), "connection left open after a parse error"
        assert b"HTTP/1.1" not in c.buf, f"a request after the parse error was answered: {c.buf!r}"


def test_unknown_path_is_404_json(server):
    for path in ("/nope", "/api/v1/nope", "/api/v1/datasets/events/nope", "/healthz/x"):
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
        err = r.json()["error"]
        assert err["code"] == "NOT_FOUND" and isinstance(err["message"], str) and err["message"]


def test_unknown_dataset_is_404_dataset_not_found(server):
    r = requests.post(server.url + "/api/v1/datasets/nope/events", data=b'{"a":1}\n',
                      headers={"Content-Type": "application/x-ndjson"}, timeout=10)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "DATASET_NOT_FOUND"


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", "/healthz", "GET"),
    ("POST", "/healthz", "GET"),
    ("GET", EVENTS, "POST"),
    ("PUT", EVENTS, "POST"),
    ("POST", "/api/v1/datasets", "GET"),
])
def test_wrong_method_is_405_with_allow(server, method, path, allowed):
    r = requests.request(method, server.url + path, timeout=10)
    assert r.status_code == 405, r.text
    allow = [m.strip() for m in r.headers.get("Allow", "").split(",")]
    assert allowed in allow, r.headers
    assert method not in allow, r.headers
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_chunked_request_body(server):
    rows = [b'{"id": %d, "name": "c%d"}\n' % (i, i) for i in range(1, 6)]
    body = b"".join(rows)
    # chunks that split rows in the middle, with a chunk extension
    pieces = [body[:7], body[7:30], body[30:31], body[31:]]
    chunked = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces)
    chunked = chunked.replace(b"\r\n", b";ext=1\r\n", 1) + b"0\r\n\r\n"
    req = (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
    with Raw(server) as c:
        c.send(req)
        for i in range(0, len(chunked), 11):
            c.send(chunked[i:i + 11])
            time.sleep(0.005)
        r = c.final_response()
        assert r.status == 200, r
        assert r.json()["accepted"] == 5, r
        # the connection is still usable
        c.send(get_req())
        assert c.final_response().status == 200
    assert db_ids(server) == [1, 2, 3, 4, 5]

    # the same through requests (a generator body is sent chunked), JSON array this time
    def gen():
        yield b'[{"id": 10, "name": "a"},'
        yield b' {"id": 11, "name": "b"}]'
    r = requests.post(server.url + EVENTS, data=gen(),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    assert db_ids(server) == [1, 2, 3, 4, 5, 10, 11]
