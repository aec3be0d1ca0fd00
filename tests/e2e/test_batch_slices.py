"""Pushes beside a batch being stored (issue 15), on both stores: a push to another dataset is
acknowledged, and its row readable, while a large batch is still `inserting`; the batch's DLQ
entries appear with its rows, not before; an operator may fail a batch in the middle of its
pass, and what the pass stored goes; a completed batch processed again is seen whole or not at
all. On SQLite the batch is stored in slices among the pushes (src/batch/slices.c); on
PostgreSQL its pass runs on a connection of its own.

Not timed: whether a push was answered while the batch was `inserting` is read from the store
after the answer (the batch's status then), not from a clock. The batch is large only so that
its insert lasts long enough for several pushes to fall in it."""
import time

import pytest

from test_batch_visibility import (BAD_EVERY, BATCH_ROWS, FINAL, PLAIN, SLOW, VALID_ROWS,
                                   Reader, status_of, upload, wait_done, write_csv)

EVENTS = PLAIN + """
  - name: side
    schema:
      type: object
      properties:
        id: {type: integer}
"""
INVALID_ROWS = BATCH_ROWS // BAD_EVERY
MIN_PUSHES_INSERTING = 3


def wait_inserting(server, bid, timeout=60):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        s = status_of(server, bid)
        if s == "inserting":
            return
        assert s not in FINAL, f"batch {bid} ended ({s}) before it was seen inserting"
        time.sleep(0.005)
    pytest.fail(f"batch {bid} never reached `inserting`")


def test_pushes_are_answered_while_a_batch_is_stored(make_server, tmp_path):
    """Pushes to another dataset sent during `inserting` are acknowledged and readable while
    the batch is still `inserting` (with one transaction on one writer, each would have waited
    for the batch's COMMIT, and found it `completed`)."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=EVENTS)
    bid = upload(server, path)
    wait_inserting(server, bid)
    during, after, n = 0, 0, 0
    with server.db() as db:
        while True:
            r = server.post_events("side", f'{{"id": {n}}}\n', timeout=60)
            assert r.status_code == 200, r.text
            n += 1
            status, seen = db.query(
                "SELECT (SELECT status FROM batches WHERE id = ?),"
                " (SELECT count(*) FROM ds_side)", (bid,))[0]
            assert seen == n, f"push {n} acknowledged but {seen} rows readable"
            if status == "inserting":
                during += 1
            elif status in FINAL:
                after += 1
                break
    assert during >= MIN_PUSHES_INSERTING, (
        f"only {during} of {n} pushes were answered while the batch was inserting: pushes"
        " waited for the batch")
    b = server.get(f"/api/v1/batches/{bid}").json()
    assert b["status"] == "completed" and b["row_count_inserted"] == VALID_ROWS, b


def test_dlq_entries_appear_with_the_batch(make_server, tmp_path):
    """A reader counting the batch's DLQ entries with its status sees none until the batch is
    completed, then every invalid row's."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=PLAIN)
    bid = upload(server, path)
    seen = []
    with server.db() as db:
        while True:
            status, n = db.query(
                "SELECT status, (SELECT count(*) FROM dlq WHERE batch_id = ?) FROM batches"
                " WHERE id = ?", (bid, bid))[0]
            if not seen or seen[-1] != (status, n):
                seen.append((status, n))
            if status in FINAL:
                break
            time.sleep(0.002)
    assert seen[-1] == ("completed", INVALID_ROWS), seen
    early = [(s, n) for s, n in seen if s != "completed" and n]
    assert not early, f"DLQ entries of the batch before it completed: {early}"
    assert ("inserting", 0) in seen, seen
    r = server.get("/api/v1/dlq", params={"dataset": "plain", "limit": 1000})
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == INVALID_ROWS


def test_an_operator_fails_a_batch_in_its_pass(make_server, tmp_path):
    """POST .../fail while the batch is `inserting`: it ends `failed` with the operator's
    reason, with none of its rows or DLQ entries stored, and a reader never saw part of it."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=PLAIN)
    bid = upload(server, path)
    reader = Reader(server, bid, True)
    reader.start()
    try:
        wait_inserting(server, bid)
        time.sleep(0.2 * SLOW)
        r = server.post(f"/api/v1/batches/{bid}/fail", json={"reason": "wrong vendor file"})
        assert r.status_code == 200, r.text
        # the pass notices and takes back what it stored
        deadline = time.time() + 60 * SLOW
        while time.time() < deadline:
            with server.db() as db:
                left = db.query("SELECT count(*) FROM ds_plain WHERE _batch_id = ?", (bid,))[0][0]
            if not left:
                break
            time.sleep(0.05)
        time.sleep(0.5 * SLOW)  # the pass has ended
    finally:
        reader.stop()
    bad = [p for p in reader.polls if p[2] not in (0,)]
    assert not bad, f"a reader saw rows of a batch that was failed: {bad[:10]}"
    b = server.get(f"/api/v1/batches/{bid}").json()
    assert b["status"] == "failed" and b["rejection_reason"] == "wrong vendor file", b
    with server.db() as db:
        assert db.query("SELECT count(*) FROM ds_plain") == [(0,)]
        assert db.query("SELECT count(*) FROM dlq WHERE batch_id = ?", (bid,)) == [(0,)]
    # the server goes on: a push is stored
    r = server.post_events("plain", '{"id": 1}\n')
    assert r.status_code == 200, r.text


def test_a_batch_processed_again_is_seen_whole_or_not_at_all(make_server, tmp_path):
    """Reprocess of a completed batch: its rows are all there, then none, then all again; a
    reader never sees a count in between, and each row is stored once at the end."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=PLAIN)
    bid = upload(server, path)
    deadline = time.time() + 60 * SLOW
    while status_of(server, bid) not in FINAL and time.time() < deadline:
        time.sleep(0.05)
    assert status_of(server, bid) == "completed"
    reader = Reader(server, bid, True)
    reader.start()
    try:
        r = server.post(f"/api/v1/batches/{bid}/reprocess")
        assert r.status_code == 200, r.text
        # the reader sees it leave `completed`, then come back to it
        deadline = time.time() + 60 * SLOW
        while reader.times("inserting") == 0 and time.time() < deadline:
            time.sleep(0.01)
        assert wait_done(server, reader, 60) == "completed", reader.polls[-5:]
        time.sleep(0.1)
    finally:
        reader.stop()
    reader.check({0, VALID_ROWS})
    with server.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT id) FROM ds_plain") == \
            [(VALID_ROWS, VALID_ROWS)]


def test_the_dataset_is_a_view_readers_can_query(make_server, tmp_path):
    """What SQL users see: ds_<name> answers SELECTs as before (its columns, its rows), on
    SQLite as a view of the table dsr_<name>."""
    server = make_server(datasets_yaml=PLAIN)
    r = server.post_events("plain", '{"id": 1, "name": "a", "v": 2.5}\n')
    assert r.status_code == 200, r.text
    with server.db() as db:
        assert db.query("SELECT id, name, v FROM ds_plain") == [(1, "a", 2.5)]
        cols = db.columns("ds_plain")
        assert {"_id", "_ingest_id", "_batch_id", "id", "name", "v"} <= set(cols), cols
        if server.store == "sqlite":
            assert db.query("SELECT type FROM sqlite_master WHERE name = 'ds_plain'") == \
                [("view",)]
            assert db.query("SELECT count(*) FROM dsr_plain") == [(1,)]



# PLAIN's fields, with a key; and the side dataset
KEYED = (PLAIN.replace("name: plain\n", "name: keyed\n    key: id\n    on_duplicate: skip\n")
         + EVENTS[len(PLAIN):])


def test_pushes_beside_a_keyed_batch(make_server, tmp_path):
    """A dataset with a key: while its batch is `inserting` (in slices on SQLite, on a
    connection of its own on PostgreSQL), a push to another dataset and a push of a key the
    batch does not hold are acknowledged; a push of a key the batch has stored is answered 503
    KEY_BUSY at once, nothing of it stored, and found a duplicate when sent again after."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=KEYED)
    r = server.post_events("keyed", '{"id": 888888888, "name": "before"}\n')
    assert r.status_code == 200, r.text
    with open(path, "rb") as f:
        r = server.post("/api/v1/datasets/keyed/batches", data=f,
                        headers={"Content-Type": "text/csv"}, timeout=120)
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    wait_inserting(server, bid)
    time.sleep(0.3 * SLOW)  # row 1 is stored by now
    busy = server.post_events("keyed", '{"id": 1, "name": "pushed"}\n', timeout=60)
    other = server.post_events("keyed", '{"id": 999999999, "name": "pushed"}\n', timeout=60)
    side = server.post_events("side", '{"id": 1}\n', timeout=60)
    seen = server.post_events("keyed", '{"id": 888888888, "name": "again"}\n', timeout=60)
    during = status_of(server, bid)
    assert during == "inserting", "the batch ended too soon to tell: make it larger"
    assert busy.status_code == 503, busy.text
    assert busy.json()["error"]["code"] == "KEY_BUSY", busy.text
    assert "keyed" in busy.json()["error"]["message"]
    assert busy.headers.get("Retry-After") == "1"
    assert other.status_code == 200 and other.json()["accepted"] == 1, other.text
    assert side.status_code == 200, side.text
    assert seen.status_code == 200 and seen.json()["duplicates"] == 1, seen.text
    deadline = time.time() + 60 * SLOW
    while status_of(server, bid) not in FINAL and time.time() < deadline:
        time.sleep(0.05)
    b = server.get(f"/api/v1/batches/{bid}").json()
    assert b["status"] == "completed" and b["row_count_inserted"] == VALID_ROWS, b
    again = server.post_events("keyed", '{"id": 1, "name": "pushed"}\n', timeout=60)
    assert again.status_code == 200 and again.json()["duplicates"] == 1, again.text
    with server.db() as db:
        assert db.query("SELECT name FROM ds_keyed WHERE id = 1") == [("row number 1",)]
        assert db.query("SELECT count(*) FROM ds_keyed") == [(VALID_ROWS + 2,)]


def test_batches_of_one_keyed_dataset_meet_in_order(make_server, tmp_path):
    """Two workers, two batches into one dataset with a key, their keys overlapping, uploaded
    together: each is seen whole or not at all, every key is stored once, and the rows of the
    batch stored second that the first had stored are its duplicates."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=KEYED, extra_yaml="batches: {workers: 2}\n")
    ids = []
    for _ in range(2):
        with open(path, "rb") as f:
            r = server.post("/api/v1/datasets/keyed/batches", data=f,
                            headers={"Content-Type": "text/csv"}, timeout=120)
        assert r.status_code == 202, r.text
        ids.append(r.json()["batch_id"])
    deadline = time.time() + 120 * SLOW
    while time.time() < deadline and any(status_of(server, b) not in FINAL for b in ids):
        time.sleep(0.05)
    bs = [server.get(f"/api/v1/batches/{b}").json() for b in ids]
    assert [b["status"] for b in bs] == ["completed", "completed"], bs
    assert sorted((b["row_count_inserted"], b["row_count_duplicate"]) for b in bs) == \
        [(0, VALID_ROWS), (VALID_ROWS, 0)], bs
    with server.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT id) FROM ds_keyed") == \
            [(VALID_ROWS, VALID_ROWS)]


def test_health_shows_the_batch_writers(make_server, tmp_path):
    """/health/detailed: on PostgreSQL, once a batch ran on its worker's own writer, a
    `batch_writers` check says it commits; on SQLite (the passes run on the one writer) there
    is no such check."""
    server = make_server(datasets_yaml=PLAIN)
    path = tmp_path / "small.csv"
    path.write_text("id,name,v\n1,a,1.5\n2,b,2.5\n")
    bid = upload(server, str(path))
    deadline = time.time() + 30 * SLOW
    while status_of(server, bid) not in FINAL and time.time() < deadline:
        time.sleep(0.05)
    assert status_of(server, bid) == "completed"
    r = server.get("/health/detailed")
    assert r.status_code == 200, r.text
    checks = {c["name"]: c for c in r.json()["checks"]}
    if server.store == "sqlite":
        assert "batch_writers" not in checks, checks
    else:
        assert checks["batch_writers"]["status"] == "pass", checks
        assert "1 worker writer committing" == checks["batch_writers"]["detail"], checks
