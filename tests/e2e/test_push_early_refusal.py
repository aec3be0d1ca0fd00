"""A push refused for what its headers say is answered before its body is read (issue 15,
"Also in reach"): an unknown dataset, a Content-Type that is not JSON, a bad
Idempotency-Key, an unknown query parameter, refused credentials, a rate limit. The answer
is the one the complete request gets (status, error code and message), it comes while most
of the body is still unsent, no 100 Continue precedes it, and the connection is closed
after it: the rest of the body is never read as a next request. A push without a body is
refused as before, on a connection that stays open, and accepted pushes are unchanged."""
import json
import socket
import time

import pytest
import requests

ROW = b'{"case_number":"CASE-0000001","amount":1,"filed_date":"2024-01-01"}\n'
BIG = 4 << 20  # announced, never all sent: the server must not wait for it


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_answer(sock, timeout=5.0):
    """(status, {header: value}, body bytes, whole head) of one answer on sock."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the answer's body"
        rest += chunk
    return status, headers, rest[:n], head + b"\r\n\r\n"


def closes(sock, seconds=5.0):
    """True when the server closes the connection within seconds (nothing more read)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def head_of(path, ctype="application/x-ndjson", length=BIG, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


def early(server, path, ctype="application/x-ndjson", extra=""):
    """Send a push's headers and the first rows of a 4 MiB body, then wait for the answer
    without sending the rest; then send the rest anyway (a request in it must not be
    answered) and check the server closes. Returns (status, headers, json body)."""
    with connect(server) as s:
        s.sendall(head_of(path, ctype, extra=extra) + ROW * 10)
        t0 = time.time()
        status, headers, body, _ = read_answer(s)
        assert time.time() - t0 < 3, "the answer waited for the body"
        # what follows is still the refused body, whatever it looks like
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + ROW * 100)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closes(s), "the connection stayed open after an early refusal"
        return status, headers, json.loads(body)


def whole(server, path, ctype="application/x-ndjson", headers=None):
    """The same push sent whole with requests (what the answer must be)."""
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return requests.post(server.url + path, data=ROW * 1000, headers=h, timeout=30)


EVENTS = "/api/v1/datasets/judgments/events"

CASES = {
    "unknown_dataset": ("/api/v1/datasets/nope/events", "application/x-ndjson", {}, 404,
                        "DATASET_NOT_FOUND", "no dataset named 'nope'"),
    "media_type": (EVENTS, "text/plain", {}, 415, "UNSUPPORTED_MEDIA_TYPE",
                   "Content-Type must be application/json or application/x-ndjson (UTF-8)"),
    "charset": (EVENTS, "application/json; charset=latin1", {}, 415, "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type must be application/json or application/x-ndjson (UTF-8)"),
    "idempotency_key": (EVENTS, "application/x-ndjson", {"Idempotency-Key": "k" * 256}, None,
                        "INVALID_PARAMETER", "Idempotency-Key must be 1 to 255 characters"),
    "query_parameter": (EVENTS + "?nosuch=1", "application/x-ndjson", {}, None, None, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_the_body_with_the_same_answer(server, case):
    path, ctype, hdrs, status, code, message = CASES[case]
    ref = whole(server, path, ctype, hdrs)  # the complete request's answer
    assert ref.status_code >= 400, ref.text
    if status:
        assert ref.status_code == status, ref.text
    if code:
        assert ref.json()["error"]["code"] == code and ref.json()["error"]["message"] == message
    extra = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    got_status, got_headers, got = early(server, path, ctype, extra)
    assert got_status == ref.status_code
    assert got == ref.json(), (got, ref.text)
    assert got_headers.get("connection") == "close", got_headers
    assert got_headers.get("content-type") == "application/json"
    with server.db() as db:
        assert not db.table_exists("ds_judgments") or \
            db.query("SELECT COUNT(*) FROM ds_judgments")[0][0] == 0


def test_no_100_continue_before_an_early_refusal(server):
    with connect(server) as s:
        s.sendall(head_of("/api/v1/datasets/nope/events", extra="Expect: 100-continue\r\n"))
        status, headers, body, head = read_answer(s)
        assert status == 404 and b"100 Continue" not in head, head
        assert json.loads(body)["error"]["code"] == "DATASET_NOT_FOUND"
        assert closes(s)


def test_chunked_body_refused_early(server):
    with connect(server) as s:
        s.sendall(b"POST /api/v1/datasets/nope/events HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"%x\r\n" % len(ROW) + ROW + b"\r\n")
        status, headers, body, _ = read_answer(s)
        assert status == 404 and headers.get("connection") == "close"
        assert closes(s)


def test_a_refused_push_without_a_body_keeps_the_connection(server):
    """Nothing to skip: answered after the (empty) request as before, and the connection
    goes on to the next request."""
    with connect(server) as s:
        s.sendall(head_of("/api/v1/datasets/nope/events", length=0))
        status, headers, body, _ = read_answer(s)
        assert status == 404 and "connection" not in headers, headers
        assert json.loads(body)["error"]["message"] == "no dataset named 'nope'"
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, _ = read_answer(s)
        assert status == 200


def test_accepted_pushes_keep_the_connection(server):
    with connect(server) as s:
        for n in range(3):
            row = ROW.replace(b"0000001", b"%07d" % (n + 1))
            s.sendall(head_of(EVENTS, length=len(row)) + row)
            status, headers, body, _ = read_answer(s)
            assert status == 200, body
            assert json.loads(body)["accepted"] == 1 and "connection" not in headers
    with server.db() as db:
        assert db.query("SELECT COUNT(*) FROM ds_judgments")[0][0] == 3


def test_refused_credentials_and_rate_limit_before_the_body(make_server):
    """These two were already decided on the headers (dispatch_admit): the same holds."""
    s = make_server(extra_yaml="auth: {dev_bypass: false}\n")
    status, headers, body = early(s, EVENTS, extra="Authorization: Bearer nope\r\n")
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    assert headers.get("www-authenticate", "").startswith("Bearer"), headers

    s = make_server(extra_yaml="rate_limits: {requests_per_s: 0.1, burst: 1}\n")
    first = requests.post(s.url + EVENTS, data=ROW, timeout=30,
                          headers={"Content-Type": "application/x-ndjson"})
    assert first.status_code == 200, first.text
    status, headers, body = early(s, EVENTS)
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"
    assert headers.get("retry-after"), headers
