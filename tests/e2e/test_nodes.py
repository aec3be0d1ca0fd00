"""Several nodes on one PostgreSQL (issue 7): batches uploaded to either node are each
processed once; a node killed while it holds a batch loses it to the other after the lease,
and one that is slow but alive keeps it; the same Idempotency-Key sent to both nodes at once
stores its rows once; the sentinel runs on one node at a time and moves when that node
dies."""
import threading
import time

import pytest
import requests

from conftest import STORE

pytestmark = pytest.mark.skipif(STORE != "postgres", reason="several nodes need PostgreSQL")

EXTRA = "batches: {workers: 1, lease_s: 3}\nsentinel: {interval_s: 1}\n"


def two_nodes(make_server, extra=EXTRA):
    a = make_server(extra_yaml=extra)
    b = make_server(start=False, extra_yaml=extra)
    b.pg_dbname = a.pg_dbname  # one database; each node its own data_dir (nothing else shared)
    b.write_config(extra_yaml=extra)
    b.start()
    return a, b


def upload(node, n, base):
    body = b"case_number,amount,filed_date\n" + b"".join(
        b"CASE-%07d,1,2024-01-01\n" % (base + i) for i in range(n))
    r = requests.post(node.url + "/api/v1/datasets/judgments/batches", data=body,
                      headers={"Content-Type": "text/csv"}, timeout=60)
    assert r.status_code == 202, r.text
    return r.json()["batch_id"]


def wait_done(node, bid, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = node.get(f"/api/v1/batches/{bid}").json()
        if b["status"] in ("completed", "failed"):
            return b
        time.sleep(0.1)
    pytest.fail(f"batch {bid} did not finish: {b}")


def test_each_batch_processed_once_on_either_node(make_server):
    a, b = two_nodes(make_server)
    ids, lock = [], threading.Lock()

    def send(node, k):
        bid = upload(node, 200, k * 1000)
        with lock:
            ids.append(bid)
    ts = [threading.Thread(target=send, args=((a, b)[k % 2], k)) for k in range(12)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for bid in ids:
        d = wait_done(a, bid)
        assert (d["status"], d["row_count_inserted"], d["attempts"]) == ("completed", 200, 1), d
    with a.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT case_number) FROM ds_judgments") == \
            [(2400, 2400)]


def test_one_key_sent_to_both_nodes_at_once_stores_its_rows_once(make_server):
    """A client that retries on another node while its first request is still committing:
    both answers are the first request's, and the rows (of a dataset without a key, where
    nothing else would catch a second copy) are stored once, for every key."""
    a, b = two_nodes(make_server)
    keys = 40
    answers, lock = {}, threading.Lock()

    def send(node, k, start):
        body = "\n".join('{"id": %d, "name": "k%d"}' % (k * 10 + i, k) for i in range(10))
        start.wait()
        r = requests.post(node.url + "/api/v1/datasets/events/events", data=body,
                          headers={"Content-Type": "application/x-ndjson",
                                   "Idempotency-Key": "both-%d" % k}, timeout=30)
        with lock:
            answers.setdefault(k, []).append((r.status_code, r.json()))

    for k in range(keys):
        start = threading.Barrier(2)
        ts = [threading.Thread(target=send, args=(n, k, start)) for n in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    for k in range(keys):
        (s1, j1), (s2, j2) = answers[k]
        assert (s1, s2) == (200, 200), answers[k]
        assert j1["ingest_id"] == j2["ingest_id"], "key %d answered twice differently: %s" % (
            k, answers[k])
    with a.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT id) FROM ds_events") == \
            [(keys * 10, keys * 10)]


def test_killed_node_loses_its_batch_to_the_other(make_server):
    a, b = two_nodes(make_server)
    bid = upload(a, 60000, 500000)
    deadline = time.time() + 30
    holder = None
    while time.time() < deadline and not holder:
        d = a.get(f"/api/v1/batches/{bid}").json()
        if d["status"] in ("staging", "validating", "transforming", "inserting") and d["worker"]:
            holder = d["worker"]
        elif d["status"] in ("completed", "failed"):
            pytest.skip("the batch finished before it could be interrupted")
        time.sleep(0.02)
    assert holder, "no node took the batch"
    victim, other = (a, b) if holder.split("/")[0].endswith(f":{a.port}") else (b, a)
    victim.kill9()
    d = wait_done(other, bid, timeout=90)
    assert d["status"] == "completed" and d["row_count_inserted"] == 60000, d
    assert d["attempts"] >= 2, d
    with other.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT case_number) FROM ds_judgments") == \
            [(60000, 60000)]


def test_a_pass_longer_than_the_lease_keeps_its_batch(make_server):
    """The writer's transaction is invisible to the other node while a pass runs; the lease
    is renewed beside it, so a batch that takes many leases to store is not taken over."""
    a, b = two_nodes(make_server, "batches: {workers: 1, lease_s: 1}\n")
    t0 = time.time()
    bid = upload(a, 150000, 2000000)  # judgments has a key: a row a statement, seconds
    d = wait_done(b, bid, timeout=120)
    took = time.time() - t0
    assert took > 3, f"the pass took {took:.1f} s: too short to outlast the 1 s lease"
    assert (d["status"], d["row_count_inserted"], d["attempts"]) == ("completed", 150000, 1), d
    assert [h["status"] for h in d["history"]].count("staging") == 1, d["history"]
    with a.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT case_number) FROM ds_judgments") == \
            [(150000, 150000)]


def test_sentinel_runs_on_one_node_and_moves(make_server):
    a, b = two_nodes(make_server)

    def roles():
        out = {}
        for n in (a, b):
            try:
                out[n] = n.get("/health/detailed", timeout=2).json()["node"]["roles"]
            except requests.RequestException:
                out[n] = None
        return out
    deadline = time.time() + 10
    while sum("sentinel" in (r or []) for r in roles().values()) != 1:
        assert time.time() < deadline, roles()
        time.sleep(0.1)
    leader = next(n for n, r in roles().items() if "sentinel" in r)
    follower = b if leader is a else a
    leader.kill9()
    deadline = time.time() + 15
    while "sentinel" not in (follower.get("/health/detailed").json()["node"]["roles"]):
        assert time.time() < deadline, "the sentinel's role did not move"
        time.sleep(0.1)
