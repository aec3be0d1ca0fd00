"""PostgreSQL going away under a running node (issue 7).

The cluster that `make e2e-pg` runs on (pg_virtualenv's) is stopped with
`pg_ctlcluster VERSION NAME stop -m immediate` in the middle of a large push or of a batch
being inserted, and started again 10 s later. A 2xx must mean the rows are on disk: the first
answer is 2xx with every row or 503 with none, while the database is away every write answers
503 with Retry-After (never 500, never 2xx) and /health/ready is 503; the node comes back by
itself (writer, read connections, batch workers, the sentinel; the LISTEN connection is
tested in test_store_pg_nodes.c) and an idempotent retry stores every row exactly once.

A COMMIT whose answer never arrives is made real with a small TCP proxy between sluice and
PostgreSQL that forwards the COMMIT, waits for the server's answer and then cuts both
connections instead of relaying it: the rows are committed, sluice answers 503
COMMIT_UNKNOWN, and the retry with the same Idempotency-Key replays the first result.

Every test leaves the cluster running (the rest of the suite uses it)."""
import json
import os
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import STORE, _pg_params

pytestmark = pytest.mark.skipif(STORE != "postgres", reason="stops the PostgreSQL cluster")

DOWN_S = 10  # how long the database stays away


def _cluster():
    """(version, name) of the cluster the PG* variables point at (pg_virtualenv's), or None."""
    port = os.environ.get("PGPORT", "5432")
    try:
        out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[2] == port:
            return f[0], f[1]
    return None


CLUSTER = _cluster() if STORE == "postgres" else None


def pg_ctl(action, *args):
    subprocess.run(["pg_ctlcluster", *CLUSTER, action, *args], check=True, timeout=120,
                   capture_output=True)


class Outage:
    """The cluster stopped (-m immediate) now, and started again by back() DOWN_S seconds
    after the stop, or at the latest when the `with` block ends."""

    def __enter__(self):
        if CLUSTER is None:
            pytest.skip("no pg_ctlcluster cluster on PGPORT (run under `make e2e-pg`)")
        pg_ctl("stop", "-m", "immediate")
        self.stopped = time.monotonic()
        self.up = False
        return self

    def back(self):
        if not self.up:
            time.sleep(max(0.0, self.stopped + DOWN_S - time.monotonic()))
            pg_ctl("start")
            self.up = True

    def __exit__(self, *exc):
        self.back()


def cpu_ticks(pid):
    """CPU time the process used so far, in clock ticks (every thread)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_writing(server, table, timeout=60):
    """Until the server's writer is inside a transaction that wrote to `table`."""
    with server.db() as db:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if db.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                        " AND query LIKE ?", (f"%{table}%",))[0][0]:
                return
            time.sleep(0.02)
    pytest.fail(f"the writer did not start writing to {table}")


def wait_ready(server, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = server.get("/health/ready", timeout=5)
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200:
            return
        time.sleep(0.1)
    pytest.fail(f"the node did not become ready again: {r.text}")


def assert_refused_while_down(server, outage):
    """Every write answers 503 with Retry-After and /health/ready is 503 until the database
    is back; the process spins no thread meanwhile."""
    t0, ticks0 = time.monotonic(), cpu_ticks(server.proc.pid)
    seen = set()
    while time.monotonic() < outage.stopped + DOWN_S - 1:
        r = server.get("/health/ready", timeout=5)
        assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
        r = server.post_events("events", '{"id": 1}\n', timeout=5)
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.text
        seen.add(r.json()["error"]["code"])
        r = server.post("/api/v1/datasets/judgments/batches", timeout=5,
                        data=b"case_number,amount,filed_date\nCASE-0000001,1,2024-01-01\n",
                        headers={"Content-Type": "text/csv"})
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.text
        r = server.get("/api/v1/batches", timeout=5)
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.text
        time.sleep(0.2)
    assert seen == {"UNAVAILABLE"}, seen
    busy = (cpu_ticks(server.proc.pid) - ticks0) / os.sysconf("SC_CLK_TCK")
    assert busy < 0.25 * (time.monotonic() - t0), f"{busy:.2f} s of CPU while the database was away"


def count_rows(server, table, col):
    with server.db() as db:
        return db.query(f'SELECT count(*), count(DISTINCT {col}) FROM "{table}"')[0]


# ---------------------------------------------------------------- the database stops

def test_push_cut_by_an_immediate_stop_is_all_or_nothing(make_server):
    # Nothing else writes (no workers, no sentinel): the node must notice by itself that the
    # database is back, not through a job that happens to succeed.
    server = make_server(extra_yaml="batches: {workers: 0}\nsentinel: {interval_s: 0}\n")
    n = 200000
    body = "".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(n)).encode()
    headers = {"Idempotency-Key": "push-1"}
    first = {}

    def push():
        try:
            first["r"] = server.post_events("events", body, headers=headers, timeout=120)
        except requests.RequestException as e:
            first["r"] = e
    t = threading.Thread(target=push)
    t.start()
    wait_writing(server, "ds_events")
    with Outage() as outage:
        t.join(60)
        assert not t.is_alive(), "no answer to the push while the database was away"
        r = first["r"]
        assert isinstance(r, requests.Response), r
        assert r.status_code in (200, 503), r.text
        assert_refused_while_down(server, outage)
        outage.back()
        wait_ready(server)  # by itself: sluice was not restarted
    stored = count_rows(server, "ds_events", "id")
    if r.status_code == 200:  # committed just before the stop: all of it
        assert r.json()["accepted"] == n and stored == (n, n), (r.text, stored)
    else:
        assert r.headers.get("Retry-After") == "1", r.headers
        assert r.json()["error"]["code"] in ("UNAVAILABLE", "COMMIT_UNKNOWN"), r.text
        assert stored in ((0, 0), (n, n)), stored
    again = server.post_events("events", body, headers=headers, timeout=120)
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] == n, again.text
    assert count_rows(server, "ds_events", "id") == (n, n)
    assert server.proc.poll() is None


def test_batch_cut_by_an_immediate_stop_completes_after_restart(make_server):
    """A CSV batch being inserted when the database stops is taken up again once it is back
    and completes with every row once; the workers and the sentinel work again without a
    restart of sluice."""
    server = make_server(extra_yaml=(
        "batches: {workers: 2, lease_s: 5}\n"
        "sentinel: {interval_s: 1, rules: {dlq_growth: {warning_count: 1}}}\n"))
    n = 100000
    csv = b"case_number,amount,filed_date\n" + b"".join(
        b"CASE-%07d,1,2024-01-01\n" % i for i in range(n))
    up = server.post("/api/v1/datasets/judgments/batches", data=csv,
                     headers={"Content-Type": "text/csv", "Idempotency-Key": "csv-1"}, timeout=60)
    assert up.status_code == 202, up.text
    bid = up.json()["batch_id"]
    wait_writing(server, "ds_judgments")
    with Outage() as outage:
        assert_refused_while_down(server, outage)
        outage.back()
        wait_ready(server)
    deadline = time.monotonic() + 60
    while (b := server.get(f"/api/v1/batches/{bid}").json())["status"] not in ("completed",
                                                                               "failed"):
        assert time.monotonic() < deadline, b
        time.sleep(0.2)
    assert (b["status"], b["row_count_inserted"]) == ("completed", n), b
    assert b["attempts"] >= 2, b
    assert count_rows(server, "ds_judgments", "case_number") == (n, n)
    # the same upload again with its key: the first batch, not a second one
    again = server.post("/api/v1/datasets/judgments/batches", data=csv,
                        headers={"Content-Type": "text/csv", "Idempotency-Key": "csv-1"},
                        timeout=60)
    assert again.status_code == 202 and again.json()["batch_id"] == bid, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"

    # the workers take new batches (the LISTEN connection's return: test_store_pg_nodes.c)
    small = server.post("/api/v1/datasets/judgments/batches", headers={"Content-Type": "text/csv"},
                        data=b"case_number,amount,filed_date\nCASE-9000001,1,2024-01-01\n")
    assert small.status_code == 202, small.text
    deadline = time.monotonic() + 30
    while server.get(f"/api/v1/batches/{small.json()['batch_id']}").json()["status"] != \
            "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # the sentinel holds its role and records alerts again
    bad = server.post_events("judgments", '{"case_number": "x"}\n{"case_number": "y"}\n')
    assert bad.status_code == 422, bad.text
    deadline = time.monotonic() + 20
    while "dlq_growth" not in [a["rule"] for a in
                               server.get("/api/v1/alerts?state=firing").json()["items"]]:
        assert time.monotonic() < deadline, "the sentinel recorded no alert after the outage"
        time.sleep(0.2)
    assert "sentinel" in server.get("/health/detailed").json()["node"]["roles"]


# ---------------------------------------------------------------- a session killed, the server up

def test_a_session_killed_under_a_batch_is_taken_up_again(make_server):
    """The writer's session is terminated (pg_terminate_backend: a DBA, a pooler restart)
    while a batch's rows stream in, and PostgreSQL stays up: the batch is not marked failed
    but taken up again at once, and completes with every row once; pushes work meanwhile."""
    server = make_server(extra_yaml="batches: {workers: 1}\n")
    n = 100000
    csv = b"case_number,amount,filed_date\n" + b"".join(
        b"CASE-%07d,1,2024-01-01\n" % i for i in range(n))
    up = server.post("/api/v1/datasets/judgments/batches", data=csv,
                     headers={"Content-Type": "text/csv"}, timeout=60)
    assert up.status_code == 202, up.text
    bid = up.json()["batch_id"]
    wait_writing(server, "ds_judgments")
    with server.db() as db:
        killed = db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                          " AND backend_xid IS NOT NULL AND query LIKE ?", ("%ds_judgments%",))
    assert killed == [(True,)], killed
    deadline = time.monotonic() + 60
    while (b := server.get(f"/api/v1/batches/{bid}").json())["status"] not in ("completed",
                                                                               "failed"):
        assert time.monotonic() < deadline, b
        time.sleep(0.2)
    assert (b["status"], b["row_count_inserted"], b["attempts"]) == ("completed", n, 2), b
    assert count_rows(server, "ds_judgments", "case_number") == (n, n)
    again = [ln for ln in server.log_lines() if ln.get("msg", "").startswith(
        "the store failed under the pass")]
    assert [ln["batch_id"] for ln in again] == [bid], again
    assert server.post_events("events", '{"id": 1}\n').status_code == 200


# ---------------------------------------------------------------- a COMMIT without an answer

class CommitCutter:
    """A TCP proxy to PostgreSQL. Once armed with a marker, the first COMMIT sent on a
    connection after a statement holding the marker is forwarded; when the server's answer
    to it arrives the proxy closes both sides instead of relaying it."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.marker = None
        self.lock = threading.Lock()
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, marker):
        with self.lock:
            self.marker = marker

    def close(self):
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            conn = {"client": client, "server": server, "seen": False, "cutting": False}
            threading.Thread(target=self._upstream, args=(conn,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(conn,), daemon=True).start()

    def _upstream(self, conn):
        """sluice -> PostgreSQL: each message is looked at before the bytes go on, so the
        cut is decided before the server can answer. The first message (startup) has no
        type byte; sslmode=disable leaves no SSL request before it."""
        buf, at, startup = b"", 0, True
        try:
            while data := conn["client"].recv(65536):
                buf, at = buf[at:] + data, 0
                while True:
                    head = 4 if startup else 5
                    if len(buf) - at < head:
                        break
                    n = struct.unpack("!I", buf[at + head - 4:at + head])[0]
                    if len(buf) - at < head - 4 + n:
                        break
                    kind, body = buf[at:at + 1], buf[at + head:at + head - 4 + n]
                    at += head - 4 + n
                    if startup:
                        startup = False
                        continue
                    with self.lock:
                        if self.marker and self.marker in body:
                            conn["seen"] = True
                        # Parse: statement name, NUL, the query text
                        if conn["seen"] and kind == b"P" and body.split(b"\0")[1] == b"COMMIT":
                            self.marker, conn["seen"], conn["cutting"] = None, False, True
                conn["server"].sendall(data)
        except OSError:
            pass
        self._close(conn)

    def _downstream(self, conn):
        """PostgreSQL -> sluice, until the answer to the cut COMMIT: CommandComplete."""
        buf = b""
        try:
            while data := conn["server"].recv(65536):
                if not conn["cutting"]:
                    conn["client"].sendall(data)
                    continue
                buf += data
                while len(buf) >= 5:
                    n = struct.unpack("!I", buf[1:5])[0]
                    if len(buf) < 1 + n:
                        break
                    if buf[:1] == b"C" and buf[5:1 + n].startswith(b"COMMIT"):
                        self.cut.set()  # committed, and sluice never hears it
                        raise OSError("cut")
                    buf = buf[1 + n:]
        except OSError:
            pass
        self._close(conn)

    @staticmethod
    def _close(conn):
        for s in (conn["client"], conn["server"]):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def cut_server(make_server):
    """A server whose every PostgreSQL connection goes through a CommitCutter."""
    params = _pg_params()
    proxy = CommitCutter(params.get("host", "localhost"), int(params.get("port", 5432)))
    server = make_server(start=False, extra_yaml="batches: {workers: 1}\n")
    q = {k: v for k, v in params.items() if k not in ("host", "port")}
    q.update(host="127.0.0.1", port=str(proxy.port), sslmode="disable", gssencmode="disable")
    url = f"postgresql:///{server.pg_dbname}?" + urllib.parse.urlencode(q)
    with open(server.config_path) as f:
        cfg = f.read()
    with open(server.config_path, "w") as f:
        f.write(cfg.replace(f"storage: {server.storage_url}\n", f"storage: {url}\n"))
    server.start()
    yield server, proxy
    server.stop()
    proxy.close()


def test_commit_without_an_answer_is_503_and_the_keyed_retry_replays(cut_server):
    server, proxy = cut_server
    n = 1000
    body = "".join(json.dumps({"id": i, "name": "x"}) + "\n" for i in range(n))
    proxy.arm(b"ds_events")
    r = server.post_events("events", body, headers={"Idempotency-Key": "unknown-1"})
    assert proxy.cut.is_set(), "the proxy cut no COMMIT"
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "COMMIT_UNKNOWN", r.text
    assert r.headers.get("Retry-After") == "1"
    assert count_rows(server, "ds_events", "id") == (n, n)  # it was committed after all
    wait_ready(server)
    again = server.post_events("events", body, headers={"Idempotency-Key": "unknown-1"})
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["accepted"] == n
    assert count_rows(server, "ds_events", "id") == (n, n)


def test_batch_record_without_an_answer_keeps_its_file(cut_server):
    """The batch record's COMMIT is cut: 503 COMMIT_UNKNOWN, yet the batch exists; its file
    must still be there, so the keyed retry names it and it is processed."""
    server, proxy = cut_server
    csv = b"case_number,amount,filed_date\n" + b"".join(
        b"CASE-%07d,1,2024-01-01\n" % i for i in range(50))
    proxy.arm(b"INSERT INTO batches")
    h = {"Content-Type": "text/csv", "Idempotency-Key": "upload-1"}
    r = server.post("/api/v1/datasets/judgments/batches", data=csv, headers=h)
    assert proxy.cut.is_set(), "the proxy cut no COMMIT"
    assert r.status_code == 503 and r.json()["error"]["code"] == "COMMIT_UNKNOWN", r.text
    wait_ready(server)
    again = server.post("/api/v1/datasets/judgments/batches", data=csv, headers=h)
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true", \
        again.text
    bid = again.json()["batch_id"]
    deadline = time.monotonic() + 30
    while (b := server.get(f"/api/v1/batches/{bid}").json())["status"] not in ("completed",
                                                                               "failed"):
        assert time.monotonic() < deadline, b
        time.sleep(0.1)
    assert (b["status"], b["row_count_inserted"]) == ("completed", 50), b
