"""Batch files kept by the store (issue 7, docs/architecture.md "Where a batch's file
lives"). On PostgreSQL a batch's raw file is in the database, so a node that never saw
the upload processes it, re-ingests it, reads it again for a failing batch's errors and
for a DLQ retry, and deletes it. On both stores a repeated upload and a delete leave no
file behind."""
import os
import shutil
import time

import pytest
import requests

from conftest import STORE, pg_drop_database

FINAL = ("completed", "failed")


def csv_body(n, bad=(), first=1):
    """n judgments rows CASE-<first>.., with status `nope` (not in the enum) in rows bad
    (row numbers, 1 = the first row)."""
    rows = [b"case_number,amount,filed_date,status"]
    for i in range(1, n + 1):
        rows.append(b"CASE-%07d,%d.5,2024-01-%02d,%s" %
                    (first + i - 1, i, 1 + i % 28, b"nope" if i in bad else b"open"))
    return b"\n".join(rows) + b"\n"


def upload(node, body, threshold=None, headers=None):
    params = {"error_threshold_percent": threshold} if threshold is not None else None
    h = {"Content-Type": "text/csv"}
    h.update(headers or {})
    r = requests.post(node.url + "/api/v1/datasets/judgments/batches", data=body, params=params,
                      headers=h, timeout=120)
    assert r.status_code == 202, r.text
    return r.json()["batch_id"]


def wait_done(node, bid, timeout=120):
    deadline = time.time() + timeout
    b = None
    while time.time() < deadline:
        b = node.get(f"/api/v1/batches/{bid}").json()
        if b["status"] in FINAL:
            return b
        time.sleep(0.1)
    pytest.fail(f"batch {bid} did not finish: {b}")


def second_node(make_server, first, extra_yaml):
    """Another node on first's database, with a data_dir of its own."""
    other = make_server(start=False, extra_yaml=extra_yaml)
    pg_drop_database(other.pg_dbname)  # the one it made for itself is not used
    other.pg_dbname = first.pg_dbname
    other.write_config(extra_yaml=extra_yaml)
    assert other.data_dir != first.data_dir
    return other.start()


@pytest.mark.skipif(STORE != "postgres", reason="nodes share the batch files on PostgreSQL")
def test_a_batch_uploaded_to_one_node_is_processed_by_another(make_server):
    a = make_server(extra_yaml="batches: {workers: 0}\n")  # A only receives
    n = 60000  # about 2.4 MB: three chunks
    data = csv_body(n, bad={7, 30001})
    bid = upload(a, data, threshold=5)
    failing = upload(a, csv_body(100, bad={3, 50}), threshold=1)
    a.stop()
    shutil.rmtree(a.data_dir)  # nothing of the uploads stays on A
    b = second_node(make_server, a, "batches: {workers: 1}\n")

    d = wait_done(b, bid)
    assert (d["status"], d["row_count_total"], d["row_count_inserted"],
            d["row_count_invalid"]) == ("completed", n, n - 2, 2), d
    with b.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT case_number) FROM ds_judgments") == \
            [(n - 2, n - 2)]
        assert db.query("SELECT count(*) FROM batch_files WHERE batch_id = ?", (bid,)) == [(3,)]
    assert b.batch_file(bid) == data

    # the row errors, downloaded from B
    r = b.get(f"/api/v1/batches/{bid}/errors", params={"format": "csv"})
    assert r.status_code == 200, r.text
    lines = r.text.strip().split("\r\n")
    assert [ln.split(",")[1:3] for ln in lines[1:]] == [["7", "NOT_IN_ENUM"],
                                                        ["30001", "NOT_IN_ENUM"]], lines

    # a DLQ retry on B reads the file's header from the database: the row is still refused
    # for its own value, not for a file that cannot be read
    items = b.get("/api/v1/dlq", params={"dataset": "judgments"}).json()["items"]
    row7 = next(i for i in items if i["row"] == 7)
    r = b.post(f"/api/v1/dlq/{row7['id']}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open" and \
        [e["code"] for e in r.json()["errors"]] == ["NOT_IN_ENUM"], r.json()

    # a failing batch's error pass reads the file again (on the writer, through the worker's
    # connection)
    d = wait_done(b, failing)
    assert (d["status"], d["row_count_invalid"]) == ("failed", 2), d
    errs = b.get(f"/api/v1/batches/{failing}/errors").json()["items"]
    assert [e["row_number"] for e in errs] == [3, 50], errs

    # force re-ingest on B: every row again, once
    assert b.post(f"/api/v1/batches/{bid}/reprocess").status_code == 200
    d = wait_done(b, bid)
    assert (d["status"], d["row_count_inserted"]) == ("completed", n - 2), d
    assert [h["status"] for h in d["history"]].count("completed") == 2, d["history"]
    with b.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT case_number) FROM ds_judgments") == \
            [(n - 2, n - 2)]

    # delete on B: the record and every chunk of its file
    r = b.delete(f"/api/v1/batches/{bid}")
    assert r.status_code == 200, r.text
    assert r.json()["file"] is None and r.json()["file_bytes"] == len(data), r.json()
    with b.db() as db:
        assert db.query("SELECT count(*) FROM batch_files WHERE batch_id = ?", (bid,)) == [(0,)]
    assert b.batch_file_ids() == [failing]


def test_repeated_upload_and_deletes_leave_no_file(make_server):
    s = make_server(extra_yaml="batches: {workers: 0}\n")
    body = csv_body(20)
    first = upload(s, body, headers={"Idempotency-Key": "k-1"})
    again = upload(s, body, headers={"Idempotency-Key": "k-1"})
    assert again == first
    assert s.batch_file_ids() == [first], "the repeat's file was kept"
    r = requests.post(s.url + "/api/v1/datasets/judgments/batches", data=csv_body(21),
                      headers={"Content-Type": "text/csv", "Idempotency-Key": "k-1"}, timeout=30)
    assert r.status_code == 409, r.text
    assert s.batch_file_ids() == [first], "a refused upload's file was kept"

    others = sorted(upload(s, csv_body(5 + k)) for k in range(3))
    assert s.batch_file_ids() == sorted([first] + others)
    r = s.delete(f"/api/v1/batches/{others[0]}")
    assert r.status_code == 200, r.text
    assert s.batch_file_ids() == sorted([first] + others[1:])
    r = s.delete("/api/v1/batches", params={"dataset": "judgments"})
    assert r.status_code == 200 and len(r.json()["deleted"]) == 3, r.text
    assert s.batch_file_ids() == []
    bdir = os.path.join(s.data_dir, "batches")
    assert os.listdir(bdir) == [], "a spool, a file or a node's copy of a deleted batch was left"


@pytest.mark.skipif(STORE != "postgres", reason="the node's copy of an upload is PostgreSQL's")
def test_the_receiving_node_reads_its_own_copy_once_and_never_a_bent_one(make_server):
    """The node that received an upload keeps a copy of the file in its data_dir, reads it
    instead of the database's when its sha256 is the batch's, and removes it once read;
    a copy that differs (a bad disk, a hand) is removed and the database's file read."""
    s = make_server(extra_yaml="batches: {workers: 0}\n")  # nothing processed yet
    good, bent = csv_body(3000, bad={5}), csv_body(2000, bad={9}, first=5001)
    first, second = upload(s, good), upload(s, bent)
    bdir = os.path.join(s.data_dir, "batches")
    assert sorted(os.listdir(bdir)) == sorted([first + ".csv.copy", second + ".csv.copy"])
    path = os.path.join(bdir, second + ".csv.copy")
    with open(path, "r+b") as f:  # row 1's case number changes on this node's disk only
        f.seek(len(b"case_number,amount,filed_date,status\nCASE-000"))
        f.write(b"9")  # CASE-0005001 -> CASE-0009001
    s.stop()
    s.write_config(extra_yaml="batches: {workers: 1}\n")
    s.start()
    for bid, n in ((first, 3000), (second, 2000)):
        d = wait_done(s, bid)
        assert (d["status"], d["row_count_inserted"], d["row_count_invalid"]) == \
            ("completed", n - 1, 1), d
    with s.db() as db:
        assert db.query("SELECT count(*) FROM ds_judgments WHERE case_number = 'CASE-0009001'") \
            == [(0,)], "the bent copy's row was stored"
        assert db.query("SELECT count(*) FROM ds_judgments WHERE case_number IN"
                        " ('CASE-0000001', 'CASE-0005001')") == [(2,)], "row 1 of each file"
    assert os.listdir(bdir) == [], "a copy was left after its batch was read"
    warned = [ln for ln in s.log_lines() if "copy of a batch file differs" in ln.get("msg", "")]
    assert [w["batch_id"] for w in warned] == [second], warned
