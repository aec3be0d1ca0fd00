"""An upsert batch replaces rows readers see (issue 15), on both stores: while it is being
stored, a reader of ds_<name> sees every row as it was before the batch, or every row as the
batch left it, never a mix - through the whole pass, across a kill -9 and the reclaim, and when
an operator fails the batch in the middle of it (then the rows it had replaced are back as they
were). On SQLite the batch is stored in slices among the pushes: the rows it updates in place
are kept as they were in dsv_<name> and shown by the view until the batch is published
(src/store/sqlite/sqlite_schema.c); on PostgreSQL its transaction hides it until its COMMIT.

Each poll is one statement that reads the batch's status with two counts (all rows, and rows
still as pushed), as test_batch_visibility.py's reader does. Not timed."""
import time

import pytest

from test_batch_visibility import (FINAL, MIN_POLLS_INSERTING, PLAIN, SLOW, VALID_ROWS, Reader, status_of, upload,
                                   write_csv)

UPSERT = PLAIN.replace("name: plain\n", "name: plain\n    key: id\n    on_duplicate: upsert\n")
PUSHED = 20_000  # ids 1..PUSHED pushed first; the file has them all (its bad rows are above)
BEFORE = PUSHED * 1_000_000 + PUSHED  # all rows, rows still as pushed: encoded in one number
AFTER = VALID_ROWS * 1_000_000


def push_all(server):
    for start in range(1, PUSHED + 1, 2_000):
        body = "".join(f'{{"id": {i}, "name": "pushed", "v": 0}}\n'
                       for i in range(start, start + 2_000))
        r = server.post_events("plain", body, timeout=60)
        assert r.status_code == 200 and r.json()["accepted"] == 2_000, r.text


def reader_of(server, bid):
    reader = Reader(server, bid, False)
    reader.sql = ("SELECT b.status, b.attempts, (SELECT count(*) FROM ds_plain) * 1000000"
                  " + (SELECT count(*) FROM ds_plain WHERE name = 'pushed')"
                  " FROM batches b WHERE b.id = ?")
    reader.start()
    return reader


def wait_upserting(server, bid, timeout=60):
    """An upsert batch's pass is `upserting` (where a plain one is `upserting`)."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        s = status_of(server, bid)
        if s == "upserting":
            return
        assert s not in FINAL, f"batch {bid} ended ({s}) before it was seen upserting"
        time.sleep(0.005)
    pytest.fail(f"batch {bid} never reached `upserting`")


def check(reader, allowed):
    """Every poll saw a count in allowed, and enough of them fell in `upserting`."""
    bad = [p for p in reader.polls if p[2] not in allowed]
    assert not bad, f"a reader saw part of the batch (status, attempts, count, polls): {bad[:20]}"
    during = reader.times("upserting")
    assert during >= MIN_POLLS_INSERTING, \
        f"the reader polled {during} times during `upserting`: {reader.polls[:20]}"


def wait_final(server, bid, timeout=240):  # PostgreSQL upserts row by row: minutes
    deadline = time.time() + timeout * SLOW
    while status_of(server, bid) not in FINAL and time.time() < deadline:
        time.sleep(0.05)
    return status_of(server, bid)


def test_an_upsert_batch_is_seen_whole_or_not_at_all(make_server, tmp_path):
    """The pushed rows stay as pushed until the batch is published, then every one is the
    batch's; the batch's new keys appear at the same moment."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=UPSERT)
    push_all(server)
    bid = upload(server, path)
    reader = reader_of(server, bid)
    try:
        assert wait_final(server, bid) == "completed"
        # until a poll begun after the publication is in (one poll may take longer than the
        # API's answer under load: a count of the whole view)
        deadline = time.time() + 30
        while reader.last_status() != "completed" and time.time() < deadline:
            time.sleep(0.05)
    finally:
        reader.stop()
    check(reader, {BEFORE, AFTER})
    assert reader.polls[-1][2] == AFTER
    with server.db() as db:
        assert db.query("SELECT name, _batch_id FROM ds_plain WHERE id = 7") == \
            [("row number 7", bid)]
        assert db.query("SELECT count(*), count(DISTINCT id) FROM ds_plain") == \
            [(VALID_ROWS, VALID_ROWS)]
        if server.store == "sqlite":  # what was kept for readers meanwhile is gone
            assert db.query("SELECT count(*) FROM dsv_plain") == [(0,)]
    b = server.get(f"/api/v1/batches/{bid}").json()
    assert b["status"] == "completed" and b["row_count_inserted"] == VALID_ROWS, b


def test_an_upsert_batch_failed_in_its_pass_puts_the_rows_back(make_server, tmp_path):
    """POST .../fail while the batch is `upserting`, after it has replaced pushed rows: it
    ends `failed`, every pushed row is back as pushed (same _id), none of its rows is left."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=UPSERT)
    push_all(server)
    with server.db() as db:
        ids_before = db.query("SELECT id, _id FROM ds_plain ORDER BY id")
    bid = upload(server, path)
    reader = reader_of(server, bid)
    try:
        wait_upserting(server, bid)
        time.sleep(0.3 * SLOW)  # the first rows of the file (the pushed ids) are stored
        if server.store == "sqlite":
            with server.db() as db:
                kept = db.query("SELECT count(*) FROM dsv_plain")[0][0]
            assert kept > 0, "the batch had replaced no row yet: the test proves nothing"
        r = server.post(f"/api/v1/batches/{bid}/fail", json={"reason": "wrong vendor file"})
        assert r.status_code == 200, r.text
        deadline = time.time() + 60 * SLOW
        while time.time() < deadline:
            with server.db() as db:
                left = db.query("SELECT count(*) FROM ds_plain WHERE _batch_id = ?", (bid,))
            if left == [(0,)]:
                break
            time.sleep(0.05)
        time.sleep(0.5 * SLOW)  # the pass has ended
    finally:
        reader.stop()
    bad = [p for p in reader.polls if p[2] != BEFORE]
    assert not bad, f"a reader saw rows of a batch that was failed: {bad[:10]}"
    b = server.get(f"/api/v1/batches/{bid}").json()
    assert b["status"] == "failed" and b["rejection_reason"] == "wrong vendor file", b
    with server.db() as db:
        assert db.query("SELECT id, _id FROM ds_plain ORDER BY id") == ids_before
        assert db.query("SELECT count(*) FROM ds_plain WHERE name = 'pushed'") == [(PUSHED,)]
        if server.store == "sqlite":
            assert db.query("SELECT count(*) FROM dsv_plain") == [(0,)]
            assert db.query("SELECT count(*) FROM dsr_plain") == [(PUSHED,)]
    # the keys are free again once the pass has let go of them (PostgreSQL: at its
    # ROLLBACK; until then KEY_BUSY, which says to send again): a push updates one
    deadline = time.time() + 240 * SLOW
    while True:
        r = server.post_events("plain", '{"id": 3, "name": "later"}\n', timeout=60)
        if r.status_code != 503 or time.time() > deadline:
            break
        assert r.json()["error"]["code"] == "KEY_BUSY", r.text
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


def test_an_upsert_batch_across_a_kill9(make_server, tmp_path):
    """SIGKILL in the middle of the pass, the reader polling through the kill, the restart and
    the reclaim: only BEFORE or AFTER is ever seen, AFTER at the end, attempts 2."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=UPSERT)
    push_all(server)
    bid = upload(server, path)
    reader = reader_of(server, bid)
    try:
        wait_upserting(server, bid)
        time.sleep(0.3 * SLOW)
        server.kill9()
        assert status_of(server, bid) == "upserting", \
            "the kill came after the commit: make the batch larger"
        if server.store == "sqlite":
            with server.db() as db:
                assert db.query("SELECT count(*) FROM dsv_plain")[0][0] > 0, \
                    "the batch had replaced no row before the kill: the test proves nothing"
        time.sleep(0.3)
        server.start()
        assert wait_final(server, bid) == "completed"
        # until a poll begun after the publication is in (one poll may take longer than the
        # API's answer under load: a count of the whole view)
        deadline = time.time() + 30
        while reader.last_status() != "completed" and time.time() < deadline:
            time.sleep(0.05)
    finally:
        reader.stop()
    check(reader, {BEFORE, AFTER})
    assert reader.polls[-1][2] == AFTER
    b = server.get(f"/api/v1/batches/{bid}").json()
    assert b["attempts"] == 2, b
    with server.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT id) FROM ds_plain") == \
            [(VALID_ROWS, VALID_ROWS)]
        assert db.query("SELECT count(*) FROM ds_plain WHERE name = 'pushed'") == [(0,)]


def test_a_push_of_a_key_the_upsert_batch_took_waits(make_server, tmp_path):
    """While the batch is `upserting` and has replaced pushed row 1: pushing key 1 again is
    answered 503 KEY_BUSY (on SQLite at once; on PostgreSQL after writer.lock_wait_ms), and a
    new key is stored; once the batch is published, key 1 can be pushed and wins."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=UPSERT)
    push_all(server)
    bid = upload(server, path)
    wait_upserting(server, bid)
    time.sleep(0.3 * SLOW)
    busy = server.post_events("plain", '{"id": 1, "name": "again"}\n', timeout=60)
    other = server.post_events("plain", '{"id": 999999999, "name": "new"}\n', timeout=60)
    assert status_of(server, bid) == "upserting", "the batch ended too soon to tell"
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "KEY_BUSY", busy.text
    assert other.status_code == 200 and other.json()["accepted"] == 1, other.text
    assert wait_final(server, bid) == "completed"
    again = server.post_events("plain", '{"id": 1, "name": "again"}\n', timeout=60)
    assert again.status_code == 200 and again.json()["accepted"] == 1, again.text
    with server.db() as db:
        assert db.query("SELECT name FROM ds_plain WHERE id = 1") == [("again",)]
        assert db.query("SELECT name FROM ds_plain WHERE id = 2") == [("row number 2",)]
        assert db.query("SELECT count(*) FROM ds_plain") == [(VALID_ROWS + 1,)]
