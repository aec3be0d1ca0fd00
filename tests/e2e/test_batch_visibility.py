"""The visibility rule of CSV batches (issue 15): a reader of ds_<name> sees none or all of a
batch's rows, never a count in between - while the batch is inserting, while single rows are
pushed to the same dataset at the same time, and across a kill -9 of the server during
`inserting` and the reclaim that takes the batch up again.

A reader thread polls the store through its own read connection (conftest's server.db()) as
fast as it can. Each poll is one statement, so one snapshot, that reads the batch's status
(table batches) together with the count, so every count seen is known to have been taken
while the batch was `inserting` or not. A test fails if the reader never polled during
`inserting` (it would pass vacuously), and the failure message of the rule lists the counts
seen outside {before, before + the batch's valid rows} with the status read with each.
Not timed: the batch is large (BATCH_ROWS) only so that its insert lasts long enough for
many polls to fall in it."""
import threading
import time

import pytest
import requests

from conftest import SANITIZED

SLOW = 2 if SANITIZED else 1
BATCH_ROWS = 300_000
BAD_EVERY = 25_000  # row numbers that are a multiple of it are invalid (id not an integer)
VALID_ROWS = BATCH_ROWS - BATCH_ROWS // BAD_EVERY
KILL_AFTER_S = 0.2  # the kill -9 comes this long after `inserting` began (which lasts ~1 s
#                    on SQLite and ~3 s on PostgreSQL with the release build)
MIN_POLLS_INSERTING = 5  # polls that must fall in `inserting` for a test to count

# key-less, so that nothing in the batch is a duplicate of a pushed row
PLAIN = """
  - name: plain
    schema:
      type: object
      properties:
        id: {type: integer}
        name: {type: string}
        v: {type: number}
"""
# the same with a key (no id repeats in the file): stored in slices on SQLite too
KEYED_PLAIN = PLAIN.replace("name: plain\n", "name: plain\n    key: id\n    on_duplicate: reject\n")
FINAL = ("completed", "failed")


def write_csv(path):
    """BATCH_ROWS data rows id,name,v; every BAD_EVERY-th has an id that is not an integer."""
    with open(path, "w") as f:
        f.write("id,name,v\n")
        step = 50_000
        for start in range(1, BATCH_ROWS + 1, step):
            f.write("".join(
                (f"x{i}" if i % BAD_EVERY == 0 else str(i)) + f",row number {i},{i % 997}.5\n"
                for i in range(start, min(BATCH_ROWS, start + step - 1) + 1)))
    return path


def upload(server, path):
    with open(path, "rb") as f:
        r = requests.post(f"{server.url}/api/v1/datasets/plain/batches", data=f,
                          headers={"Content-Type": "text/csv"}, timeout=120)
    assert r.status_code == 202, r.text
    return r.json()["batch_id"]


def push(server, rows):
    r = server.post_events("plain", "".join(f'{{"id": {i}, "name": "pushed"}}\n' for i in rows),
                           timeout=60)
    assert r.status_code == 200, r.text


def status_of(server, bid):
    with server.db() as db:
        return db.query("SELECT status FROM batches WHERE id = ?", (bid,))[0][0]


class Reader(threading.Thread):
    """Polls (status and attempts of batch bid, count) in one statement, as fast as it can,
    until stop(); polls that fail (the store away for a moment, as around a kill) are counted
    and retried. polls: every (status, attempts, count) seen, in order, consecutive repeats
    kept once with the number of times seen: [status, attempts, count, times]."""

    def __init__(self, server, bid, by_batch):
        super().__init__(daemon=True)
        self.server, self.bid = server, bid
        where = " WHERE _batch_id = ?" if by_batch else ""
        self.sql = ("SELECT b.status, b.attempts,"
                    f' (SELECT count(*) FROM "ds_plain"{where}) FROM batches b WHERE b.id = ?')
        self.args = (bid, bid) if by_batch else (bid,)
        self.polls, self.errors = [], 0
        self.since = {}  # (status, attempts) -> time.monotonic() of the first poll that saw it
        self._halt = threading.Event()

    def run(self):
        db = None
        while not self._halt.is_set():
            try:
                if db is None:
                    db = self.server.db()
                seen = list(db.query(self.sql, self.args)[0])
            except Exception:  # noqa: BLE001 - sqlite3 or psycopg2, whichever the store is
                self.errors += 1
                if db is not None:
                    db.close()
                    db = None
                time.sleep(0.01)
                continue
            if self.polls and self.polls[-1][:3] == seen:
                self.polls[-1][3] += 1
            else:
                self.polls.append(seen + [1])
                self.since.setdefault(tuple(seen[:2]), time.monotonic())
        if db is not None:
            db.close()

    def stop(self):
        self._halt.set()
        self.join(30)
        assert not self.is_alive(), "the reader did not stop"

    def last_status(self):
        return self.polls[-1][0] if self.polls else None

    def times(self, status, attempts=None):
        """Polls that saw the batch in status (and at attempts, if given)."""
        return sum(n for s, a, _, n in self.polls
                   if s == status and attempts in (None, a))

    def check(self, allowed):
        """The rule: every count seen is in allowed; and the reader polled during
        `inserting` at least MIN_POLLS_INSERTING times."""
        bad = [(s, a, c, n) for s, a, c, n in self.polls if c not in allowed]
        assert not bad, (f"a reader saw part of the batch: counts {sorted(allowed)} allowed, "
                         f"seen (status, attempts, count, polls): {bad[:20]}"
                         f"{' ...' if len(bad) > 20 else ''}")
        inserting = self.times("inserting")
        assert inserting >= MIN_POLLS_INSERTING, (
            f"the reader polled {inserting} times during `inserting` (at least "
            f"{MIN_POLLS_INSERTING} needed, or the test proves nothing): {self.polls[:20]}")


def wait_done(server, reader, timeout):
    """Wait until the reader has seen the batch in a final status; returns that status."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if reader.last_status() in FINAL:
            return reader.last_status()
        assert reader.is_alive(), "the reader stopped"
        time.sleep(0.05)
    pytest.fail(f"batch {reader.bid} did not finish within {timeout * SLOW}s;"
                f" the reader saw {reader.polls[-5:]}")


def start_batch(server, path, by_batch):
    bid = upload(server, path)
    reader = Reader(server, bid, by_batch)
    reader.start()
    return bid, reader


@pytest.mark.parametrize("by_batch", [False, True], ids=["count-all", "count-batch"])
def test_a_batch_is_seen_whole_or_not_at_all(make_server, tmp_path, by_batch):
    """count(*) of ds_plain (or of the batch's rows) is only ever the rows before the batch
    or those plus all of the batch's valid rows."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=PLAIN)
    before = 3
    push(server, range(before))  # the table exists and holds rows before the batch
    bid, reader = start_batch(server, path, by_batch)
    try:
        assert wait_done(server, reader, 60) == "completed", reader.polls[-5:]
        time.sleep(0.1)  # a few polls after the end
    finally:
        reader.stop()
    base = 0 if by_batch else before
    reader.check({base, base + VALID_ROWS})
    assert reader.polls[-1][2] == base + VALID_ROWS


def test_whole_or_nothing_while_pushes_go_on(make_server, tmp_path):
    """Single rows pushed to the same dataset all through the batch: the rule holds per
    batch (its rows are 0 or all), and the pushes' rows are all stored beside it."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=PLAIN)
    pushed, sent_inserting, stop = [0], [0], threading.Event()
    failures = []

    def pusher():
        while not stop.is_set():
            try:
                inserting = reader.last_status() == "inserting"
                push(server, [10_000_000 + pushed[0]])
                pushed[0] += 1
                sent_inserting[0] += inserting
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                failures.append(repr(e))
                return

    bid, reader = start_batch(server, path, True)
    t = threading.Thread(target=pusher, daemon=True)
    t.start()
    try:
        assert wait_done(server, reader, 60) == "completed", reader.polls[-5:]
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(60)
        reader.stop()
    assert not failures, failures
    reader.check({0, VALID_ROWS})
    assert sent_inserting[0] > 0, "no push was sent while the batch was inserting"
    with server.db() as db:
        assert db.query("SELECT count(*) FROM ds_plain WHERE _batch_id = ?", (bid,)) == \
            [(VALID_ROWS,)]
        assert db.query("SELECT count(*) FROM ds_plain WHERE _batch_id IS NULL") == \
            [(pushed[0],)]


@pytest.mark.parametrize("yaml", [PLAIN, KEYED_PLAIN], ids=["no-key", "key"])
def test_whole_or_nothing_across_a_kill9(make_server, tmp_path, yaml):
    """SIGKILL while the batch is `inserting`, the reader polling through the kill, the
    restart and the reclaim: the batch's rows are only ever 0 or all, all at the end, each
    once (attempts 2)."""
    path = write_csv(str(tmp_path / "b.csv"))
    server = make_server(datasets_yaml=yaml)
    bid, reader = start_batch(server, path, True)
    try:
        deadline = time.time() + 60 * SLOW
        # in the middle of the insert: a pass that committed its rows in parts would have
        # left some of them by now
        while (time.monotonic() - reader.since.get(("inserting", 1), time.monotonic())
               < KILL_AFTER_S * SLOW and time.time() < deadline):
            assert reader.last_status() not in FINAL, \
                f"the batch ended before the kill: {reader.polls[-5:]}"
            time.sleep(0.005)
        assert ("inserting", 1) in reader.since, f"never saw `inserting`: {reader.polls}"
        server.kill9()
        assert status_of(server, bid) == "inserting", \
            "the kill came after the commit: make the batch larger"
        time.sleep(0.3)  # the reader polls the store of a dead server
        server.start()
        assert wait_done(server, reader, 60) == "completed", reader.polls[-5:]
        time.sleep(0.1)
    finally:
        reader.stop()
    reader.check({0, VALID_ROWS})
    assert reader.times("inserting", attempts=2) >= MIN_POLLS_INSERTING, \
        f"the reader did not poll during the reclaim's `inserting`: {reader.polls}"
    assert reader.polls[-1][2] == VALID_ROWS
    r = server.get(f"/api/v1/batches/{bid}")
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["attempts"] == 2 and b["row_count_inserted"] == VALID_ROWS, b
    with server.db() as db:
        assert db.query("SELECT count(*), count(DISTINCT id) FROM ds_plain") == \
            [(VALID_ROWS, VALID_ROWS)]
