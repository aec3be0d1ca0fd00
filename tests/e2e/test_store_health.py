"""The store's health as the writer sees it (issue 13, items 1.1 and 1.3): a locked
database, failing checkpoints or a full disk make writes fail while reads still answer;
/health/ready, /health/db, sluice_store_up, the audit log and the sentinel must tell.

SQLite's write lock is taken from the test (python sqlite3 `BEGIN EXCLUSIVE`, held by a
connection of the test) for longer than the writer's busy timeout (5 s)."""
import json
import os
import re
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, STORE, wait_for

EVENTS = """  - name: ev
    schema:
      type: object
      required: [id]
      properties:
        id: {type: integer}
        pad: {type: string}
"""
AUTH = "\nauth: {metrics: open}\n"
# Only the test's requests go to the writer (no batch worker claims, no sentinel run).
QUIET = AUTH + "batches: {workers: 0}\nsentinel: {interval_s: 0}\n"


def begin_failures(server):
    return sum(1 for line in server.log_lines() if line.get("msg") == "begin failed")


def admin_key(server):
    r = subprocess.run([BIN, "keys", "create", "--config", server.config_path, "--name", "ops",
                        "--role", "admin"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {"Authorization": "Bearer " + json.loads(r.stdout)["key"]}


def metric(server, name):
    """The value of an unlabelled sample, or None."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", server.get("/metrics").text, re.M)
    return float(m.group(1)) if m else None


def post(server, hdr, body, rid=None):
    h = dict(hdr, **({"X-Request-Id": rid} if rid else {}))
    return server.post_events("ev", body, ctype="application/json", headers=h, timeout=60)


class Lock:
    """SQLite's write lock, held by a connection of the test until release()."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("BEGIN EXCLUSIVE")

    def release(self):
        if self.db:
            self.db.execute("ROLLBACK")
            self.db.close()
            self.db = None


def audit_ids(server, hdr):
    items = server.get("/api/v1/audit", params={"limit": 1000}, headers=hdr).json()["items"]
    return [i["request_id"] for i in items]


@pytest.mark.sqlite_only("the write lock is taken with sqlite3 BEGIN EXCLUSIVE on the file")
def test_health_reflects_failing_commits_and_recovers(make_server):
    server = make_server(extra_yaml=QUIET, datasets_yaml=EVENTS)
    hdr = admin_key(server)
    assert post(server, hdr, {"id": 1}).status_code == 200
    assert server.get("/health/ready").status_code == 200
    assert metric(server, "sluice_store_up") == 1

    lock = Lock(server.db_path)
    try:
        r = post(server, hdr, {"id": 2})
        assert r.status_code == 503, r.text  # the writer's BEGIN timed out
        # reads still answer, but the store cannot commit: not ready, db fail, store down
        r = server.get("/health/ready")
        assert r.status_code == 503, r.text
        assert "commits are failing" in r.json()["reason"], r.text
        r = server.get("/health/db", headers=hdr)
        assert r.status_code == 503 and r.json()["status"] == "fail", r.text
        assert "begin failed" in r.json()["detail"], r.text
        r = server.get("/health", headers=hdr)
        assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
        d = server.get("/health/detailed", headers=hdr).json()
        assert {c["name"]: c["status"] for c in d["checks"]}["db"] == "fail", d
        assert metric(server, "sluice_store_up") == 0
        assert metric(server, "sluice_writer_commit_failures_total") >= 1
        # a BEGIN that failed ran no COMMIT: only the successful ones were timed
        assert metric(server, "sluice_store_commit_duration_seconds_count") == \
            metric(server, "sluice_writer_commits_total")
    finally:
        lock.release()
    # no request needed: the writer tries an empty transaction by itself
    wait_for(lambda: server.get("/health/ready").status_code == 200, timeout=20,
             what="ready again once the lock is released")
    assert server.get("/health/db", headers=hdr).json()["status"] == "pass"
    assert metric(server, "sluice_store_up") == 1
    assert post(server, hdr, {"id": 3}).status_code == 200


@pytest.mark.sqlite_only("the write lock is taken with sqlite3 BEGIN EXCLUSIVE on the file")
def test_audit_log_recovers_after_a_failed_flush(make_server):
    server = make_server(extra_yaml=QUIET, datasets_yaml=EVENTS)
    hdr = admin_key(server)
    assert post(server, hdr, {"id": 1}, rid="before").status_code == 200
    wait_for(lambda: "before" in audit_ids(server, hdr), what="the first audit record")

    lock = Lock(server.db_path)
    try:
        assert post(server, hdr, {"id": 2}, rid="during").status_code == 503
        # the next transaction, the flush of "during", cannot begin either
        wait_for(lambda: begin_failures(server) >= 2, timeout=20,
                 what="the audit flush failing on the lock")
    finally:
        lock.release()
    # the failed flush's record is stored without any new request
    wait_for(lambda: "during" in audit_ids(server, hdr), timeout=20,
             what="the record noted while the database was locked")
    assert post(server, hdr, {"id": 3}, rid="after").status_code == 200
    wait_for(lambda: "after" in audit_ids(server, hdr), timeout=20,
             what="a record noted after the failure")
    ids = audit_ids(server, hdr)
    assert sorted(ids) == ["after", "before", "during"], ids
    assert metric(server, "sluice_audit_dropped_total") == 0
    audit = {c["name"]: c for c in server.get("/health/detailed", headers=hdr).json()["checks"]}
    assert audit["audit"]["status"] == "pass", audit
    assert re.search(r"0 records waiting, 0 dropped since start, [1-9]\d* flushes failed",
                     audit["audit"]["detail"]), audit


@pytest.mark.sqlite_only("the write lock is taken with sqlite3 BEGIN EXCLUSIVE on the file")
def test_audit_records_over_the_bound_are_dropped_and_counted(make_server):
    server = make_server(extra_yaml=QUIET + "audit: {max_pending: 3}\n", datasets_yaml=EVENTS)
    hdr = admin_key(server)
    lock = Lock(server.db_path)
    try:
        # refused before the writer (400): audited at once, flushed by a job that waits
        for i in range(5):
            r = post(server, hdr, "{not json", rid=f"bad-{i}")
            assert r.status_code == 400, r.text
        assert metric(server, "sluice_audit_dropped_total") == 2
        d = server.get("/health/detailed", headers=hdr).json()
        audit = {c["name"]: c for c in d["checks"]}["audit"]
        assert audit["status"] == "warn" and "2 dropped" in audit["detail"], audit
        assert "3 records waiting" in audit["detail"], audit
    finally:
        lock.release()
    wait_for(lambda: len(audit_ids(server, hdr)) == 3, timeout=20, what="the 3 kept records")
    assert sorted(audit_ids(server, hdr)) == ["bad-0", "bad-1", "bad-2"]
    assert any(line.get("msg") == "records dropped" for line in server.log_lines()), \
        server.logs()[-2000:]


def test_health_summary_route(make_server):
    server = make_server(extra_yaml=AUTH, datasets_yaml=EVENTS)  # open: no token needed
    r = server.get("/health")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["status"] == "ok" and j["version"] and j["uptime_s"] >= 0, j


def test_ready_fails_under_the_free_disk_minimum(make_server):
    # more than any test machine has free: the node must not say it is ready
    server = make_server(extra_yaml="health: {min_free_bytes: 1000000T}\n",
                         datasets_yaml=EVENTS)
    r = server.get("/health/ready")
    assert r.status_code == 503, r.text
    assert "health.min_free_bytes" in r.json()["reason"], r.text
    assert server.get("/health").status_code == 503
    d = server.get("/health/detailed").json()
    disk = {c["name"]: c for c in d["checks"]}["disk"]
    assert disk["status"] == "fail" and "health.min_free_bytes" in disk["detail"], disk
    assert d["status"] == "fail"


def test_ready_with_the_default_free_disk_minimum(make_server):
    server = make_server(datasets_yaml=EVENTS)
    assert server.get("/health/ready").status_code == 200
    disk = {c["name"]: c for c in server.get("/health/detailed").json()["checks"]}["disk"]
    assert disk["status"] in ("pass", "warn") and "MiB" in disk["detail"], disk


def test_store_duration_histograms(make_server):
    server = make_server(datasets_yaml=EVENTS)
    assert server.post_events("ev", {"id": 1}, ctype="application/json").status_code == 200
    assert server.get("/api/v1/dlq").status_code == 200  # a read on a loop's connection
    text = server.get("/metrics").text
    for name in ("sluice_store_commit_duration_seconds", "sluice_store_query_duration_seconds"):
        assert f"# TYPE {name} histogram" in text, name
        count = float(re.search(rf"^{name}_count (\S+)$", text, re.M).group(1))
        inf = float(re.search(rf'^{name}_bucket{{le="\+Inf"}} (\S+)$', text, re.M).group(1))
        total = float(re.search(rf"^{name}_sum (\S+)$", text, re.M).group(1))
        assert count >= 1 and inf == count and total > 0, (name, count, inf, total)
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


@pytest.mark.sqlite_only("the WAL and its checkpoints are SQLite's")
def test_wal_gauges(make_server):
    server = make_server(datasets_yaml=EVENTS)
    assert server.post_events("ev", {"id": 1}, ctype="application/json").status_code == 200
    assert metric(server, "sluice_store_wal_limit_bytes") == 64 * 1024 * 1024
    assert metric(server, "sluice_store_wal_bytes") == os.path.getsize(server.db_path + "-wal")
    assert metric(server, "sluice_store_checkpoint_failures_total") == 0
    wal = {c["name"]: c for c in server.get("/health/detailed").json()["checks"]}["wal"]
    assert wal["status"] == "pass" and "limit 67108864" in wal["detail"], wal


def chattr(flag, path):
    return subprocess.run(["chattr", flag, path], capture_output=True, text=True).returncode == 0


@pytest.mark.sqlite_only("the WAL and its checkpoints are SQLite's")
def test_failing_checkpoints_are_counted_and_alerted(make_server):
    """The database file made immutable (chattr +i): commits still go to the WAL, every
    checkpoint fails to write the database, the WAL grows."""
    server = make_server(datasets_yaml=EVENTS, extra_yaml="""
sentinel:
  interval_s: 1
  rules:
    checkpoint_failing: {after_failures: 2}
""")
    if not chattr("+i", server.db_path):
        pytest.skip("chattr +i is not available here")
    pad = "x" * 900
    try:
        def push():
            body = "\n".join(json.dumps({"id": i, "pad": pad}) for i in range(2000))
            r = server.post_events("ev", body)
            assert r.status_code == 200, r.text
            return metric(server, "sluice_store_checkpoint_failures_total") >= 2
        wait_for(push, timeout=60, what="two failed checkpoints")
        assert metric(server, "sluice_store_wal_bytes") > 4 * 1024 * 1024
        # commits still succeed: the store is up, the WAL check warns
        assert server.get("/health/ready").status_code == 200
        wal = {c["name"]: c for c in server.get("/health/detailed").json()["checks"]}["wal"]
        assert wal["status"] == "warn" and "in a row" in wal["detail"], wal

        def firing():
            items = server.get("/api/v1/alerts", params={"state": "firing"}).json()["items"]
            return [a for a in items if a["rule"] == "checkpoint_failing"]
        alert = wait_for(firing, timeout=30, what="a checkpoint_failing alert")[0]
        assert alert["severity"] == "critical", alert
        assert "checkpoints failed in a row" in alert["summary"], alert
    finally:
        chattr("-i", server.db_path)
    # the next checkpoint succeeds: the alert resolves
    def resolved():
        server.post_events("ev", "\n".join(json.dumps({"id": i, "pad": pad}) for i in range(500)))
        items = server.get("/api/v1/alerts", params={"state": "resolved"}).json()["items"]
        return [a for a in items if a["rule"] == "checkpoint_failing"]
    wait_for(resolved, timeout=60, what="the checkpoint_failing alert resolved")


def mount_tmpfs(server, size):
    """data_dir on a tmpfs of size (the test is skipped where mount fails)."""
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", server.data_dir],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")


def test_ready_is_not_ok_on_a_full_disk(make_server):
    """data_dir on a small tmpfs filled to its last byte: ready must say so (it said ok)."""
    server = make_server(start=False, datasets_yaml=EVENTS)
    mount_tmpfs(server, "128m")
    fill = os.path.join(server.data_dir, "fill.bin")
    try:
        server.start()
        assert server.get("/health/ready").status_code == 200
        with open(fill, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        assert os.statvfs(server.data_dir).f_bavail == 0
        r = server.get("/health/ready")
        assert r.status_code == 503, r.text
        assert "disk" in r.json()["reason"] and "(0 MiB)" in r.json()["reason"], r.text
        assert server.get("/health").status_code == 503
        os.remove(fill)
        assert server.get("/health/ready").status_code == 200
    finally:
        if os.path.exists(fill):
            os.remove(fill)
        server.stop()
        subprocess.run(["umount", "-l", server.data_dir], capture_output=True)


@pytest.mark.skipif(STORE != "postgres", reason="stops the PostgreSQL cluster")
def test_audit_record_noted_while_postgres_is_away_is_stored_after(make_server, tmp_path):
    """While the store is away the writer refuses every job at once, the audit flush too:
    its records wait and are stored once the database is back. The caller is a JWT (an API
    key could not be looked up while the database is away)."""
    import jwt
    from test_pg_outage import Outage
    secret = tmp_path / "hs.secret"
    secret.write_bytes(b"0123456789abcdef0123456789abcdef-store-health" + b"\n")
    server = make_server(datasets_yaml=EVENTS, extra_yaml=f"""
batches: {{workers: 0}}
sentinel: {{interval_s: 0}}
auth:
  metrics: open
  jwt:
    keys:
      - {{kid: k1, algorithms: [HS256], secret_file: {secret}}}
""")
    token = jwt.encode({"sub": "ops", "role": "admin", "exp": int(time.time()) + 600},
                       secret.read_bytes().strip(), algorithm="HS256", headers={"kid": "k1"})
    hdr = {"Authorization": f"Bearer {token}"}
    assert post(server, hdr, {"id": 1}, rid="before").status_code == 200
    with Outage() as outage:
        r = post(server, hdr, {"id": 2}, rid="during")
        assert r.status_code == 503, r.text
        time.sleep(2)  # the flush is refused (the store is away) and waits for its retry
        outage.back()
    wait_for(lambda: server.get("/health/ready").status_code == 200, timeout=60,
             what="the node ready again")
    wait_for(lambda: "during" in audit_ids(server, hdr), timeout=30,
             what="the audit record noted while the database was away")
    assert sorted(audit_ids(server, hdr)) == ["before", "during"]
    assert metric(server, "sluice_audit_dropped_total") == 0


def row_count(server, table="ds_ev"):
    db = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


@pytest.mark.sqlite_only("SQLITE_FULL from a small tmpfs under the database file")
def test_health_reflects_writes_failing_inside_the_transaction(make_server):
    """A full disk fails a large push's INSERTs (SQLite spills its page cache to the WAL
    mid-statement), while BEGIN and an empty COMMIT still succeed: the job failed on a
    store fault, so commits count as failing until a real write succeeds (health said
    pass: only a failed BEGIN or COMMIT counted)."""
    server = make_server(start=False, datasets_yaml=EVENTS,
                         extra_yaml=QUIET + "health: {min_free_bytes: 0}\n")
    mount_tmpfs(server, "96m")
    fill = os.path.join(server.data_dir, "fill.bin")
    try:
        server.start()
        hdr = admin_key(server)
        assert post(server, hdr, {"id": 0}).status_code == 200
        with open(fill, "wb") as f:  # leave 12 MiB: less than the push's rows need
            while os.statvfs(server.data_dir).f_bavail * os.statvfs(server.data_dir).f_frsize \
                    > 12 << 20:
                f.write(b"\0" * (1 << 20))
                f.flush()
        big = "\n".join(json.dumps({"id": i, "pad": "x" * 3000}) for i in range(1, 15001))
        r = server.post_events("ev", big, headers=hdr, timeout=120)
        assert r.status_code == 503, r.text
        assert metric(server, "sluice_writer_commit_failures_total") >= 1
        r = server.get("/health/ready")
        assert r.status_code == 503, [l for l in server.log_lines() if l.get("level") != "info"]
        assert "commits are failing" in r.json()["reason"], r.text
        r = server.get("/health/db", headers=hdr)
        assert r.status_code == 503 and r.json()["status"] == "fail", r.text
        assert "store fault" in r.json()["detail"] and "full" in r.json()["detail"], r.text
        assert metric(server, "sluice_store_up") == 0
        # the idle writer's empty transactions succeed, but do not turn it green (no flap)
        time.sleep(5)
        assert server.get("/health/ready").status_code == 503
        assert metric(server, "sluice_store_up") == 0
        assert row_count(server) == 1  # the acknowledged row, nothing of the refused push
        os.remove(fill)
        r = server.post_events("ev", big, headers=hdr, timeout=120)
        assert r.status_code == 200, r.text
        assert server.get("/health/ready").status_code == 200
        assert server.get("/health/db", headers=hdr).json()["status"] == "pass"
        assert metric(server, "sluice_store_up") == 1
        assert row_count(server) == 15001
    finally:
        if os.path.exists(fill):
            os.remove(fill)
        server.stop()
        subprocess.run(["umount", "-l", server.data_dir], capture_output=True)


def pg_admin(sql, *args):
    """sql on the cluster's postgres database (not the server's: it may be read-only)."""
    from conftest import _pg_connect
    con = _pg_connect("postgres")
    try:
        with con.cursor() as cur:
            cur.execute(sql, args)
    finally:
        con.close()


def pg_sessions_anew(server):
    """End the server's sessions: its next ones see the database's settings."""
    pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
             server.pg_dbname)


@pytest.mark.skipif(STORE != "postgres", reason="a read-only PostgreSQL database")
def test_health_reflects_writes_failing_on_a_read_only_database(make_server):
    """A standby after a failover, as the writer sees it: its new session is read-only
    (default_transaction_read_only), BEGIN and an empty COMMIT succeed, every INSERT fails
    with SQLSTATE 25006. Commits count as failing until a write succeeds again."""
    server = make_server(extra_yaml=QUIET, datasets_yaml=EVENTS)
    hdr = admin_key(server)
    assert post(server, hdr, {"id": 1}).status_code == 200
    pg_admin(f'ALTER DATABASE "{server.pg_dbname}" SET default_transaction_read_only = on')
    try:
        pg_sessions_anew(server)
        deadline = time.monotonic() + 30
        while True:  # the first try may meet the ended session (a failed BEGIN)
            r = post(server, hdr, {"id": 2})
            assert r.status_code == 503, r.text
            d = server.get("/health/db", headers=hdr).json()
            if "read-only" in d["detail"]:  # the INSERT's (or the COMMIT's, with COPY)
                break
            assert time.monotonic() < deadline, d
            time.sleep(0.5)
        assert d["status"] == "fail", d
        r = server.get("/health/ready")
        assert r.status_code == 503 and "commits are failing" in r.json()["reason"], r.text
        assert metric(server, "sluice_store_up") == 0
        time.sleep(5)  # the idle writer's empty transactions succeed: still failing
        assert server.get("/health/ready").status_code == 503
        assert metric(server, "sluice_store_up") == 0
    finally:
        pg_admin(f'ALTER DATABASE "{server.pg_dbname}" RESET default_transaction_read_only')
        pg_sessions_anew(server)
    wait_for(lambda: post(server, hdr, {"id": 2}).status_code == 200, timeout=30,
             what="a push accepted on the writable database")
    assert server.get("/health/ready").status_code == 200
    assert metric(server, "sluice_store_up") == 1
    with server.db() as db:
        assert db.query("SELECT id FROM ds_ev ORDER BY id") == [(1,), (2,)]
