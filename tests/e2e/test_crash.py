"""Durability: "a 2xx is sent only after rows and DLQ entries are committed and fsynced".

test_kill9_during_load: 8 client threads send 20,000 events with unique ids in NDJSON batches
of 50 to dataset `events` while the server is killed with SIGKILL at 5 random moments and
restarted (same data dir, same port).  Clients retry a batch that got no answer with the same
Idempotency-Key (the documented way to retry safely); a batch that never got an answer is
"unknown".  Some rows are invalid on purpose (name is not a string) and some batches are
invalid as a whole, so that 207 and 422 answers happen too.  At the end, in the store:
every row that got a 2xx as accepted is stored exactly once, no row that was answered as
rejected is stored, unknown rows are stored at most once, and (SQLite) PRAGMA integrity_check
is ok.

test_sigterm_during_load: SIGTERM while clients are sending -> exit 0 within 10 s and every
row answered with a 2xx is stored.
"""
import json
import random
import signal
import subprocess
import threading
import time

import requests

from conftest import STORE

EVENTS = "/api/v1/datasets/events/events"
N_EVENTS = 20000
BATCH = 50
THREADS = 8
KILLS = 5


def db_id_counts(server):
    """({id: times stored in ds_events}, the store's integrity check): SQLite's PRAGMA
    integrity_check (["ok"] when the file is sound); None on PostgreSQL, which has no
    such check built in (its own WAL, not sluice, keeps its files sound)."""
    with server.db() as db:
        counts = dict(db.query("SELECT id, COUNT(*) FROM ds_events GROUP BY id"))
        integrity = None
        if STORE == "sqlite":
            integrity = [r[0] for r in db.query("PRAGMA integrity_check")]
        return counts, integrity


def make_batches(rng):
    """Batches of (id, row-text, valid?) covering ids 1..N_EVENTS."""
    batches = []
    ids = list(range(1, N_EVENTS + 1))
    for b in range(0, N_EVENTS, BATCH):
        chunk = ids[b:b + BATCH]
        whole_bad = (b // BATCH) % 37 == 5           # ~1 batch in 37 entirely invalid -> 422
        rows = []
        for i in chunk:
            bad = whole_bad or i % 101 == 0           # scattered invalid rows -> 207
            name = 12345 if bad else f"event-{i}-{rng.randrange(10**6)}"
            rows.append((i, json.dumps({"id": i, "name": name}), not bad))
        batches.append(rows)
    return batches


class Ledger:
    """What each client learnt about each id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted, self.rejected, self.unknown = set(), set(), set()
        self.problems = []
        self.done = 0          # batches with a final answer
        self.no_answer = 0     # requests that got no answer (connection errors)

    def problem(self, msg):
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(msg)


def classify(rows, resp_json):
    """ids accepted / rejected according to an ingest response."""
    bad_rows = {e.get("row") for e in resp_json.get("errors") or []}
    acc, rej = set(), set()
    for n, (i, _, _) in enumerate(rows, start=1):
        (rej if n in bad_rows else acc).add(i)
    return acc, rej


def send_batch(server, session, rows, key, ledger, stop_at):
    """Send until a final answer; returns True when answered."""
    body = ("\n".join(r[1] for r in rows) + "\n").encode()
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": key}
    url = server.url + EVENTS
    while time.time() < stop_at:
        try:
            r = session.post(url, data=body, headers=headers, timeout=15)
        except requests.RequestException:
            with ledger.lock:
                ledger.no_answer += 1
            session.close()
            time.sleep(0.05)
            continue
        if r.status_code == 503:        # OVERLOADED / SHUTTING_DOWN: nothing stored, retry
            time.sleep(min(float(r.headers.get("Retry-After", "0.1") or 0.1), 0.5))
            continue
        if r.status_code not in (200, 207, 422):
            ledger.problem(f"batch {key}: unexpected {r.status_code} {r.text[:200]}")
            with ledger.lock:
                ledger.unknown.update(i for i, _, _ in rows)
            return False
        j = r.json()
        acc, rej = classify(rows, j)
        want_rej = {i for i, _, ok in rows if not ok}
        if rej != want_rej:
            ledger.problem(f"batch {key}: {r.status_code}: rejected ids {sorted(rej)[:5]}..., "
                           f"expected {sorted(want_rej)[:5]}...: {r.text[:200]}")
        expected_status = 200 if not want_rej else (422 if len(want_rej) == len(rows) else 207)
        if r.status_code != expected_status:
            ledger.problem(f"batch {key}: status {r.status_code}, expected {expected_status}")
        if j.get("accepted") != len(acc) or j.get("rejected") != len(rej):
            ledger.problem(f"batch {key}: counts {r.text[:200]}")
        with ledger.lock:
            ledger.accepted |= acc
            ledger.rejected |= rej
            ledger.done += 1
        return True
    with ledger.lock:
        ledger.unknown.update(i for i, _, _ in rows)
    return False


def test_kill9_during_load(make_server):
    rng = random.Random()
    seed = rng.randrange(10**9)
    rng.seed(seed)
    server = make_server()
    batches = make_batches(rng)
    nbatches = len(batches)
    run = f"r{seed}"
    ledger = Ledger()
    stop_at = time.time() + 45
    queue = list(enumerate(batches))
    qlock = threading.Lock()

    def client():
        with requests.Session() as s:
            while True:
                with qlock:
                    if not queue:
                        return
                    n, rows = queue.pop(0)
                send_batch(server, s, rows, f"{run}-{n}", ledger, stop_at)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()

    # kill at 5 random moments while batches are in flight (chosen by progress, so that
    # the kills always fall inside the load however fast the server is)
    marks = sorted(rng.sample(range(nbatches // 20, nbatches * 9 // 10), KILLS))
    kills = 0
    restart_times = []
    for mark in marks:
        while ledger.done < mark and time.time() < stop_at and any(t.is_alive() for t in threads):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        if not any(t.is_alive() for t in threads):
            break
        code = server.kill9()
        assert code == -signal.SIGKILL, f"server had already exited with {code}: " \
                                        f"{server.logs()[-3000:]}"
        kills += 1
        time.sleep(rng.uniform(0, 0.2))
        t0 = time.time()
        server.start()
        restart_times.append(time.time() - t0)

    for t in threads:
        t.join(max(1, stop_at - time.time() + 20))
    assert not any(t.is_alive() for t in threads), "clients still running"
    assert kills == KILLS, f"only {kills} kills happened (progress {ledger.done}/{nbatches})"

    # stop cleanly, then look at the store
    assert server.stop() == 0, server.logs()[-3000:]
    counts, integrity = db_id_counts(server)

    info = (f"seed={seed} batches answered={ledger.done}/{nbatches} "
            f"no-answer requests={ledger.no_answer} restarts={restart_times}")
    print(info, f"accepted={len(ledger.accepted)} rejected={len(ledger.rejected)} stored={sum(counts.values())}")
    if STORE == "sqlite":
        assert integrity == ["ok"], f"{info}: integrity_check {integrity[:10]}"
    assert not ledger.problems, info + "\n" + "\n".join(ledger.problems)
    assert ledger.accepted & ledger.rejected == set(), info
    all_ids = set(range(1, N_EVENTS + 1))
    assert ledger.accepted | ledger.rejected | ledger.unknown == all_ids, info

    lost = sorted(i for i in ledger.accepted if counts.get(i, 0) == 0)
    twice = sorted(i for i in ledger.accepted if counts.get(i, 0) > 1)
    rejected_stored = sorted(i for i in ledger.rejected if counts.get(i, 0) > 0)
    unknown_twice = sorted(i for i in ledger.unknown if counts.get(i, 0) > 1)
    strangers = sorted(set(counts) - all_ids)
    assert not lost, f"{info}: {len(lost)} acknowledged rows lost, e.g. {lost[:10]}"
    assert not twice, f"{info}: {len(twice)} acknowledged rows stored twice, e.g. {twice[:10]}"
    assert not rejected_stored, \
        f"{info}: {len(rejected_stored)} rejected rows stored, e.g. {rejected_stored[:10]}"
    assert not unknown_twice, f"{info}: unknown rows stored twice: {unknown_twice[:10]}"
    assert not strangers, f"{info}: unexpected ids stored: {strangers[:10]}"
    # with retries every batch is answered in the end
    assert not ledger.unknown, f"{info}: {len(ledger.unknown)} rows never answered"


def test_sigterm_during_load(make_server):
    server = make_server()
    ledger = Ledger()
    stop_flag = threading.Event()
    next_id = [0]
    idlock = threading.Lock()

    def client():
        with requests.Session() as s:
            while not stop_flag.is_set():
                with idlock:
                    first = next_id[0] + 1
                    next_id[0] += BATCH
                rows = [(i, json.dumps({"id": i, "name": f"t{i}"}), True)
                        for i in range(first, first + BATCH)]
                body = ("\n".join(r[1] for r in rows) + "\n").encode()
                try:
                    r = s.post(server.url + EVENTS, data=body, timeout=15,
                               headers={"Content-Type": "application/x-ndjson"})
                except requests.RequestException:
                    with ledger.lock:
                        ledger.unknown.update(i for i, _, _ in rows)
                    return  # the server is going away
                if r.status_code in (200, 207):
                    acc, rej = classify(rows, r.json())
                    with ledger.lock:
                        ledger.accepted |= acc
                        ledger.rejected |= rej
                        ledger.done += 1
                elif r.status_code == 503:
                    with ledger.lock:
                        ledger.rejected.update(i for i, _, _ in rows)
                    return
                else:
                    ledger.problem(f"unexpected {r.status_code} {r.text[:200]}")
                    return

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while ledger.done < 40 and time.time() < deadline:
        time.sleep(0.01)
    assert ledger.done >= 40, f"load did not get going: {ledger.problems}"

    t0 = time.time()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        raise AssertionError(f"no exit within 10 s of SIGTERM:\n{server.logs()[-3000:]}")
    took = time.time() - t0
    stop_flag.set()
    for t in threads:
        t.join(20)
    assert code == 0, f"exit code {code} after SIGTERM:\n{server.logs()[-3000:]}"
    assert took < 10

    counts, integrity = db_id_counts(server)
    if STORE == "sqlite":
        assert integrity == ["ok"], integrity[:10]
    assert not ledger.problems, "\n".join(ledger.problems)
    lost = sorted(i for i in ledger.accepted if counts.get(i, 0) != 1)
    assert not lost, f"{len(lost)} acknowledged rows missing or duplicated: {lost[:10]}"
    extra = sorted(i for i in ledger.rejected if counts.get(i, 0))
    assert not extra, f"rows answered 503 were stored: {extra[:10]}"
    assert all(c == 1 for c in counts.values())

    # the data survives a restart
    server.start()
    r = requests.get(server.url + "/healthz", timeout=10)
    assert r.status_code == 200


def test_second_instance_on_the_same_port_refuses_to_start(make_server):
    """A restart while the old process still runs must not give two servers sharing one port
    (SO_REUSEPORT across processes): the second `sluice serve` must fail, not start silently
    and take half of the connections."""
    first = make_server()
    second = make_server(start=False)
    second.port, second.url = first.port, first.url
    second.write_config()
    second.start(wait=False)
    try:
        code = second.proc.wait(5)
    except subprocess.TimeoutExpired:
        code = None
    assert code not in (None, 0), \
        f"a second server bound the port of a running one (exit {code}):\n{second.logs()[-2000:]}"
    # the first one is untouched and still answers every request
    for _ in range(20):
        r = requests.get(first.url + "/healthz", timeout=10)
        assert r.status_code == 200
