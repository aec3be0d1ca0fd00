"""`sluice migrate` (issue 7, section 3): an install copied from one store into another
with everything in it, verified, and back.

The source is always an SQLite store filled through a real server. The target is the
suite's store: SQLite in `make e2e`, PostgreSQL in `make e2e-pg` (SLUICE_TEST_STORE), so
each run moves an install to its backend, starts sluice on the copy, and migrates the copy
back to a new SQLite file that must hold what the first one held, table by table."""
import json
import os
import pty
import sqlite3
import subprocess

import requests

from conftest import BIN, wait_for

AUTH = """
auth: {dev_bypass: false}
sentinel:
  interval_s: 1
  rules:
    error_rate: {min_rows: 5, warning_pct: 10, critical_pct: 90}
"""

# Rows of every kind: valid and invalid events, odd text, an upsert, free-form objects.
JUDGMENTS = "".join(json.dumps(r) + "\n" for r in [
    {"case_number": "CASE-0000001", "amount": 1200.5, "filed_date": "2024-02-29",
     "status": "open"},
    {"case_number": "CASE-0000002", "amount": 0.1, "filed_date": "2024-03-01",
     "notes": "tab\there\nnew line, back\\slash, \u00e9\u20ac\U0001F600"},
    {"case_number": "CASE-0000003", "amount": 1e300, "filed_date": "2024-03-02"},
    {"case_number": "CASE-0000004", "amount": -0.0, "filed_date": "2024-03-03"},
    {"case_number": "CASE-5", "amount": -5, "filed_date": "2024-03-01"},  # two errors
    {"case_number": "CASE-0000006", "amount": 1, "filed_date": "not a date", "x": 1},
])
CSV = (b"case_number,amount,filed_date,status\n"
       + b"".join(b"CASE-10%05d,%d.25,2024-05-01,closed\n" % (i, i) for i in range(8))
       + b"CASE-bad,1,2024-05-01,open\nCASE-1000099,-1,2024-05-01,open\n")


def migrate(*args, timeout=180):
    return subprocess.run([BIN, "migrate", *args], capture_output=True, text=True,
                          timeout=timeout)


def sqlite_url(server):
    return f"sqlite:{server.data_dir}/sluice.db"


def upload(server, dataset, body, headers, threshold=50):
    r = requests.post(f"{server.url}/api/v1/datasets/{dataset}/batches", data=body,
                      params={"error_threshold_percent": threshold},
                      headers={"Content-Type": "text/csv", **headers}, timeout=60)
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    wait_for(lambda: server.get(f"/api/v1/batches/{bid}", headers=headers).json()["status"]
             in ("completed", "failed"), what=f"batch {bid}")
    return bid


def new_key(server):
    p = subprocess.run([BIN, "keys", "create", "--config", server.config_path, "--name", "ops",
                        "--role", "admin"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def populate(src, h):
    """Events (valid, invalid, with an idempotency key), an upsert, odd text, a CSV batch
    with invalid rows in two datasets, an alert; audit records come with the requests."""
    r = src.post_events("judgments", JUDGMENTS, headers={**h, "Idempotency-Key": "idem-1"})
    assert r.status_code == 207 and r.json()["accepted"] == 4, r.text
    for body in ('{"id":1,"v":"a"}\n{"id":2,"v":"b"}\n', '{"id":1,"v":"a2"}\n'):
        assert src.post_events("upserts", body, headers=h).status_code == 200
    assert src.post_events("events", '{"id":7,"name":"\\u0001 \\"q\\" %s"}\n' % ("z" * 3000),
                           headers=h).status_code == 200
    assert src.post_events("anything", '{"a":[1,{"b":null}],"c":"\\u00e9"}\n',
                           headers=h).status_code == 200
    jb = upload(src, "judgments", CSV, h)
    ub = upload(src, "upserts", b"id,v\n1,from csv\n3,new\n", h)
    wait_for(lambda: src.get("/api/v1/alerts", headers=h).json()["items"], what="an alert")
    return jb, ub


def snapshot(server, h):
    """What the API says about a store, to compare across the move."""
    g = lambda path: server.get(path, headers=h).json()  # noqa: E731
    return {
        "batches": sorted((b["batch_id"], b["status"], b["row_count_total"],
                           b["row_count_inserted"], b["row_count_invalid"], b["sha256"])
                          for b in g("/api/v1/batches")["items"]),
        "dlq": [(d["id"], d["status"], d["dataset"]) for d in g("/api/v1/dlq?limit=100")["items"]],
        "kpis": g("/api/v1/stats/kpis")["all_time"],
        "errors": g("/api/v1/errors/distribution")["items"],
        "keys": [k["id"] for k in g("/api/v1/keys")["items"]],
    }


def sqlite_tables(path, data_dir):
    """Every sluice table of an SQLite store as {table: sorted rows}, with batch paths made
    relative to the data directory; SQLite's own bookkeeping left out (schema_migrations'
    times, sqlite_sequence, the rowid ranges batches keep, which differ by how rows
    came in, not by what they are, and the batches being stored in slices). A dataset is
    read as its readers see it: the view ds_<name>, not the tables dsr_<name> and dsv_<name>
    (the rows an upsert batch being stored replaced) under it."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = {}
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'dsr\\_%' ESCAPE '\\'"
        " AND name NOT LIKE 'dsv\\_%' ESCAPE '\\'"
        " AND name NOT IN ('schema_migrations', 'batch_pending', 'dlq_staged') ORDER BY name")]
    for t in names:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')
                if not (t == "batches" and r[1] in ("rows_tracked", "rows_first", "rows_last"))]
        sel = ", ".join(f'"{c}"' for c in cols)
        if t == "batch_errors":
            sel, cols = "rowid, " + sel, ["seq"] + cols
        rows = con.execute(f'SELECT {sel} FROM "{t}"').fetchall()
        if t == "batches":
            p = cols.index("path")
            rows = [r[:p] + (os.path.relpath(r[p], data_dir),) + r[p + 1:] for r in rows]
        out[t] = (cols, sorted(rows, key=repr))
    con.close()
    return out


def count(server, table):
    with server.db() as db:
        return db.query(f'SELECT count(*) FROM "{table}"')[0][0]


def test_to_the_suite_store_and_back(make_server, tmp_path):
    # an install on SQLite, filled through the server, behind an API key
    src = make_server(store="sqlite", extra_yaml=AUTH, start=False)
    key = new_key(src)
    h = {"Authorization": f"Bearer {key['key']}"}
    src.start()
    jb, ub = populate(src, h)
    before = snapshot(src, h)
    src.stop()
    assert len(before["dlq"]) == 4 and len(before["batches"]) == 2

    # to the suite's store: copied and verified, table by table
    mid = make_server(extra_yaml=AUTH, start=False)
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "copied and verified: 25 tables" in p.stdout, p.stdout
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines()[2:-1]}
    assert lines["ds_judgments"].split()[1:3] == ["12", "12"], p.stdout
    assert lines["batch"].split()[2:4] == ["2", "2"], p.stdout
    assert all(ln.endswith(" ok") for ln in lines.values()), p.stdout
    assert "sluice migrate: copy ds_judgments (12 rows)" in p.stderr, p.stderr  # not a tty

    # and back to a new SQLite file (its batch files in another directory, --data-dir): the
    # same content as the first one
    back = os.path.join(tmp_path, "back")
    p = migrate("--from", mid.storage_url, "--to", f"sqlite:{tmp_path}/db/sluice.db",
                "--data-dir", back)
    assert p.returncode == 0, p.stdout + p.stderr
    a = sqlite_tables(os.path.join(src.data_dir, "sluice.db"), src.data_dir)
    b = sqlite_tables(os.path.join(tmp_path, "db", "sluice.db"), back)
    assert a.keys() == b.keys()
    for t in a:
        assert a[t] == b[t], f"table {t} differs after the round trip"
    assert len(a["ds_judgments"][1]) == 12 and len(a["api_keys"][1]) == 1
    assert len(a["alerts"][1]) >= 1 and len(a["audit"][1]) == 7 and len(a["batch_errors"][1]) == 2
    for bid in (jb, ub):
        with open(os.path.join(src.data_dir, "batches", f"{bid}.csv"), "rb") as f1, \
                open(os.path.join(back, "batches", f"{bid}.csv"), "rb") as f2:
            assert f1.read() == f2.read()

    # --verify-only: equal now; a changed value is found and named; equal again once undone
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url, "--verify-only")
    assert p.returncode == 0 and "hold the same content" in p.stdout, p.stdout + p.stderr
    change = "UPDATE ds_judgments SET amount = ? WHERE case_number = 'CASE-0000002'"
    with mid.db(readonly=False) as db:
        assert db.execute(change, (0.1000000000000001,)) == 1
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url, "--verify-only")
    assert p.returncode == 1, p.stdout + p.stderr
    differs = [ln for ln in p.stdout.splitlines() if "DIFFERS" in ln]
    assert len(differs) == 1 and differs[0].startswith("ds_judgments "), p.stdout
    assert differs[0].endswith("DIFFERS (checksum)") and "verify FAILED" in p.stdout
    with mid.db(readonly=False) as db:
        db.execute(change, (0.1,))
    assert migrate("--from", sqlite_url(src), "--to", mid.storage_url,
                   "--verify-only").returncode == 0

    # a target that holds data is refused, by name, and left alone; --force replaces it
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url)
    assert p.returncode == 1
    assert "is not empty: datasets (5), batches (2)" in p.stderr, p.stderr
    assert "--force" in p.stderr and "Nothing was written" in p.stderr
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url, "--force")
    assert p.returncode == 0 and "replacing what it held" in p.stdout, p.stdout + p.stderr

    # sluice on the copy: the same batches, DLQ, stats and key; new ids follow the old ones
    mid.start()
    assert requests.get(mid.url + "/api/v1/batches", timeout=10).status_code == 401
    assert snapshot(mid, h) == before
    assert count(mid, "ds_judgments") == 12 and count(mid, "ds_upserts") == 3
    errs = mid.get(f"/api/v1/batches/{jb}/errors", headers=h).json()["items"]
    assert [(e["row_number"], e["error_code"]) for e in errs] == \
        [(9, "PATTERN_MISMATCH"), (10, "OUT_OF_RANGE")]
    with mid.db() as db:
        top = db.query("SELECT max(_id) FROM ds_judgments")[0][0]
        top_dlq = db.query("SELECT max(id) FROM dlq")[0][0]
    r = mid.post_events("judgments", '{"case_number":"CASE-0000100","amount":1,'
                        '"filed_date":"2024-06-01"}\n{"case_number":"bad"}\n', headers=h)
    assert r.status_code == 207, r.text
    with mid.db() as db:
        assert db.query("SELECT max(_id) FROM ds_judgments")[0][0] == top + 1
        assert db.query("SELECT max(id) FROM dlq")[0][0] == top_dlq + 1
    # the batch's file came along: it is processed again from the copy
    assert mid.post(f"/api/v1/batches/{jb}/reprocess", headers=h).status_code == 200
    done = wait_for(lambda: (lambda b: b["status"] == "completed" and b)(
        mid.get(f"/api/v1/batches/{jb}", headers=h).json()), what="the reprocessed batch")
    assert (done["row_count_total"], done["row_count_inserted"],
            done["row_count_invalid"]) == (10, 8, 2)


def assert_untouched(mid):
    """No table of the target holds a row, and no batch file (or spool) was left in it."""
    assert count(mid, "datasets") == 0 and count(mid, "batches") == 0
    if mid.store == "postgres":
        assert count(mid, "batch_files") == 0
    else:
        assert os.listdir(os.path.join(mid.data_dir, "batches")) == [], "a file or spool left"


COMPOSITE = """
  - name: cases
    key: [source, case_number]
    schema:
      type: object
      required: [source, case_number]
      properties:
        case_number: {type: string}
        source: {type: string}
        v: {type: string}
"""


def test_composite_key_round_trip(make_server, tmp_path):
    """A key of several fields goes with its dataset: the target builds the same unique
    index, in the key's order, so a duplicate is still found there; the way back holds
    what the source held."""
    src = make_server(store="sqlite", datasets_yaml=COMPOSITE)
    rows = [{"source": s, "case_number": c} for s, c in (("a", "C-1"), ("b", "C-1"), ("a", "C-1"))]
    assert src.post_events("cases", rows, ctype="application/json").status_code == 207
    src.stop()
    mid = make_server(datasets_yaml=COMPOSITE, start=False)
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url)
    assert p.returncode == 0, p.stdout + p.stderr
    back = os.path.join(tmp_path, "back")
    p = migrate("--from", mid.storage_url, "--to", f"sqlite:{tmp_path}/db/sluice.db",
                "--data-dir", back)
    assert p.returncode == 0, p.stdout + p.stderr
    a = sqlite_tables(os.path.join(src.data_dir, "sluice.db"), src.data_dir)
    b = sqlite_tables(os.path.join(tmp_path, "db", "sluice.db"), back)
    for t in ("datasets", "ds_cases", "dlq"):
        assert a[t] == b[t], f"table {t} differs after the round trip"
    con = sqlite3.connect(f"file:{tmp_path}/db/sluice.db?mode=ro", uri=True)
    assert [r[2] for r in con.execute("PRAGMA index_info('ds_cases_key')")] == \
        ["source", "case_number"]
    con.close()

    mid.start()
    with mid.db() as db:
        assert db.query("SELECT key FROM datasets") == [('["source","case_number"]',)]
        assert db.index_exists("ds_cases_key")
    r = mid.post_events("cases", '{"source":"b","case_number":"C-1"}\n'
                        '{"source":"b","case_number":"C-2"}\n')
    assert r.status_code == 207 and (r.json()["accepted"], r.json()["rejected"]) == (1, 1), r.text
    assert r.json()["errors"][0]["message"] == \
        'a row with ["source","case_number"] = ["b","C-1"] is already stored'


def test_failures_leave_the_target_as_it_was_and_damage_is_found(make_server):
    src = make_server(store="sqlite")
    h = {}
    bid = upload(src, "judgments", CSV, h)
    src.stop()
    mid = make_server(start=False)

    # a value of the wrong type, met in the middle of the one transaction (the batch's file
    # is kept by then): rolled back, the file dropped again
    with src.db(readonly=False) as db:
        assert db.execute("UPDATE ds_judgments SET amount = 'x' WHERE _id = 3") == 1
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "ds_judgments.amount: a text value where real is declared" in p.stderr, p.stderr
    assert "nothing was committed" in p.stderr
    assert_untouched(mid)
    with src.db(readonly=False) as db:
        db.execute("UPDATE ds_judgments SET amount = 2.25 WHERE _id = 3")

    # a batch file that does not match its record stops it before any table is written
    path = os.path.join(src.data_dir, "batches", f"{bid}.csv")
    with open(path, "ab") as f:
        f.write(b"CASE-0000200,1,2024-01-01,open\n")
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"batch {bid}: the source's file does not match its record" in p.stderr, p.stderr
    assert "nothing was committed" in p.stderr
    assert_untouched(mid)

    # with the file as it was, the copy goes through; then the target's copy is damaged
    with open(path, "r+b") as f:
        f.truncate(len(CSV))
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url)
    assert p.returncode == 0, p.stdout + p.stderr
    if mid.store == "postgres":
        with mid.db(readonly=False) as db:
            assert db.execute("UPDATE batch_files SET data = data || ? WHERE batch_id = ?",
                              (b"!", bid)) == 1
    else:
        with open(os.path.join(mid.data_dir, "batches", f"{bid}.csv"), "ab") as f:
            f.write(b"!")
    p = migrate("--from", sqlite_url(src), "--to", mid.storage_url, "--verify-only")
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"batch {bid}: the target's file does not match its sha256" in p.stderr, p.stderr
    assert [ln for ln in p.stdout.splitlines() if "DIFFERS" in ln] == \
        [ln for ln in p.stdout.splitlines() if ln.startswith("batch files")], p.stdout
    assert "DIFFERS (sha256)" in p.stdout


def test_progress_bar_on_a_terminal(make_server, tmp_path):
    src = make_server(store="sqlite")
    assert src.post_events("events", '{"id":1}\n{"id":2}\n').status_code == 200
    src.stop()
    master, slave = pty.openpty()
    proc = subprocess.Popen([BIN, "migrate", "--from", sqlite_url(src), "--to",
                             f"sqlite:{tmp_path}/t.db"], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        seen += chunk
    out = proc.communicate(timeout=60)[0].decode()
    os.close(master)
    assert proc.returncode == 0, out + seen.decode()
    text = seen.decode()
    assert "\r" in text and "copy   [" in text and "100.0%" in text, text
    assert "\rverify [" in text and "sluice migrate: copy" not in text, text
    assert "copied and verified" in out


def test_usage_errors(tmp_path):
    db = f"sqlite:{tmp_path}/a.db"
    p = migrate("--from", db, "--to", f"sqlite:{tmp_path}/b.db")
    assert p.returncode == 1 and f"source {db}: No such file or directory" in p.stderr, p.stderr
    assert not os.path.exists(f"{tmp_path}/a.db") and not os.path.exists(f"{tmp_path}/b.db")
    sqlite3.connect(f"{tmp_path}/a.db").close()  # an empty file: a store once migrated
    p = migrate("--from", db, "--to", db)
    assert p.returncode == 2 and "name the same store" in p.stderr
    p = migrate("--from", db)
    assert p.returncode == 2 and "usage: sluice migrate" in p.stderr
    p = migrate("--from", db, "--to", "mysql://x")
    assert p.returncode == 1 and "unsupported scheme" in p.stderr, p.stderr
    # a password is never printed
    p = migrate("--from", db, "--to", "postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=5")
    assert p.returncode == 1 and "target postgresql://u:***@127.0.0.1:1/db" in p.stderr, p.stderr
    assert "s3cret" not in p.stderr + p.stdout
    assert "--force" in subprocess.run([BIN, "help", "migrate"], capture_output=True,
                                       text=True).stdout
