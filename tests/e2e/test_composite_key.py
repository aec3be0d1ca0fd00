"""Keys of several fields (`key: [source, case_number]`, issue 13 section 2; docs/api.md,
"Keys"): one unique index over the fields in the key's order, on either store, for every
`on_duplicate` mode, through every path that stores a row: pushed JSON and NDJSON (a
duplicate within one request and across requests), CSV batches (a duplicate within the
file and against stored rows; reprocessing the batch), a DLQ retry of a DUPLICATE_KEY
entry, idempotent replays, a reload that changes the key, and the configuration check.
DUPLICATE_KEY names the key and shows every part of it as a JSON array."""
import json
import signal
import time

from conftest import wait_for

KEY = '["source","case_number"]'
FIELDS = """
    schema:
      type: object
      required: [case_number, source]
      additionalProperties: false
      properties:
        case_number: {type: string}
        v: {type: string}
        source: {type: string}
"""
DATASETS = "".join(f"""
  - name: cases_{mode}
    key: [source, case_number]
    on_duplicate: {mode}{FIELDS}""" for mode in ("reject", "skip", "upsert"))


def row(source, case, v="x"):
    return {"source": source, "case_number": case, "v": v}


def ndjson(*rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def stored(server, mode):
    with server.db() as db:
        return db.query(f"SELECT source, case_number, v FROM ds_cases_{mode}"
                        " ORDER BY source, case_number")


def dlq(server, mode):
    r = server.get("/api/v1/dlq", params={"dataset": f"cases_{mode}", "status": "all",
                                             "order": "asc"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def dup_message(source, case):
    return f'a row with {KEY} = {json.dumps([source, case], separators=(",", ":"))}' \
           " is already stored"


def upload(server, mode, body):
    r = server.post(f"/api/v1/datasets/cases_{mode}/batches", data=body,
                    headers={"Content-Type": "text/csv"})
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    return bid, wait_batch(server, bid)


def wait_batch(server, bid):
    return wait_for(lambda: (lambda b: b["status"] in ("completed", "failed") and b)(
        server.get(f"/api/v1/batches/{bid}").json()), what=f"batch {bid}")


def counts(b):
    return (b["status"], b["row_count_total"], b["row_count_inserted"], b["row_count_invalid"],
            b["row_count_duplicate"])


def batch_errors(server, bid):
    r = server.get(f"/api/v1/batches/{bid}/errors")
    assert r.status_code == 200, r.text
    return [(e["row_number"], e["error_code"], e["field"], e["error_message"])
            for e in r.json()["items"]]


# ---------------------------------------------------------------- pushes

def test_composite_key_shown_as_configured(make_server):
    server = make_server(datasets_yaml=DATASETS)
    d = server.get("/api/v1/datasets/cases_reject").json()
    assert d["key"] == ["source", "case_number"] and d["on_duplicate"] == "reject", d
    with server.db() as db:
        assert db.query("SELECT key FROM datasets WHERE name = 'cases_reject'") == [(KEY,)]
        assert db.index_exists("ds_cases_reject_key")


def test_composite_key_push_reject(make_server):
    server = make_server(datasets_yaml=DATASETS)
    # in one request: equal in one part only is another key; both parts equal is a duplicate
    r = server.post_events("cases_reject", ndjson(row("a", "C-1"), row("b", "C-1"),
                                                  row("a", "C-2"), row("a", "C-1", "again")))
    assert r.status_code == 207, r.text
    body = r.json()
    assert (body["received"], body["accepted"], body["rejected"], body["duplicates"]) == \
        (4, 3, 1, 0), body
    assert body["errors"] == [{"row": 4, "field": KEY, "code": "DUPLICATE_KEY",
                               "message": dup_message("a", "C-1")}], body
    # across requests, as a JSON array
    r = server.post_events("cases_reject", [row("b", "C-1", "later"), row("b", "C-2")],
                           ctype="application/json")
    assert r.status_code == 207, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1), r.text
    assert r.json()["errors"][0]["message"] == dup_message("b", "C-1")
    assert stored(server, "reject") == [("a", "C-1", "x"), ("a", "C-2", "x"), ("b", "C-1", "x"),
                                        ("b", "C-2", "x")]
    # the DLQ keeps both rejected rows with the key's parts in their errors
    items = dlq(server, "reject")
    assert [(json.loads(i["payload"])["v"], i["errors"]) for i in items] == [
        ("again", [{"field": KEY, "code": "DUPLICATE_KEY", "message": dup_message("a", "C-1")}]),
        ("later", [{"field": KEY, "code": "DUPLICATE_KEY", "message": dup_message("b", "C-1")}]),
    ], items


def test_composite_key_part_missing_is_a_row_error(make_server):
    """Every field of a key of several is required: a row without one is never stored."""
    server = make_server(datasets_yaml=DATASETS)
    r = server.post_events("cases_upsert", ndjson({"case_number": "C-1"}, {"source": "a"}))
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"], e["code"]) for e in r.json()["errors"]] == [
        (1, "source", "MISSING_REQUIRED_FIELD"), (2, "case_number", "MISSING_REQUIRED_FIELD")]
    assert stored(server, "upsert") == []


def test_composite_key_push_skip(make_server):
    server = make_server(datasets_yaml=DATASETS)
    r = server.post_events("cases_skip", ndjson(row("a", "C-1"), row("b", "C-1"),
                                                row("a", "C-1", "again")))
    assert r.status_code == 200, r.text
    assert (r.json()["received"], r.json()["accepted"], r.json()["duplicates"]) == (3, 2, 1)
    r = server.post_events("cases_skip", ndjson(row("b", "C-1", "later"), row("c", "C-1")))
    assert (r.json()["accepted"], r.json()["duplicates"], r.json()["errors"]) == (1, 1, []), \
        r.text
    assert stored(server, "skip") == [("a", "C-1", "x"), ("b", "C-1", "x"), ("c", "C-1", "x")]
    assert dlq(server, "skip") == []


def test_composite_key_push_upsert(make_server):
    server = make_server(datasets_yaml=DATASETS)
    r = server.post_events("cases_upsert", ndjson(row("a", "C-1", "1"), row("b", "C-1", "1"),
                                                  row("a", "C-1", "2")))
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["duplicates"]) == (3, 0), r.text
    r = server.post_events("cases_upsert", ndjson(row("b", "C-1", "3"), row("a", "C-2", "1")))
    assert r.status_code == 200, r.text
    assert stored(server, "upsert") == [("a", "C-1", "2"), ("a", "C-2", "1"), ("b", "C-1", "3")]


def test_composite_key_idempotent_replay(make_server):
    server = make_server(datasets_yaml=DATASETS)
    h = {"Idempotency-Key": "k-1"}
    body = ndjson(row("a", "C-1"), row("a", "C-1"))
    first = server.post_events("cases_reject", body, headers=h)
    assert first.status_code == 207, first.text
    again = server.post_events("cases_reject", body, headers=h)
    assert again.status_code == 207 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert stored(server, "reject") == [("a", "C-1", "x")]
    assert len(dlq(server, "reject")) == 1


# ---------------------------------------------------------------- CSV batches

CSV = (b"source,case_number,v\n"
       b"a,C-1,x\n"
       b"a,C-2,x\n"
       b"b,C-1,x\n"
       b"a,C-1,y\n"      # row 4: the same key as row 1, in the same file
       b"p,C-9,z\n")     # row 5: the same key as a pushed row


def batch_case(make_server, mode):
    server = make_server(datasets_yaml=DATASETS)
    assert server.post_events(f"cases_{mode}", ndjson(row("p", "C-9", "pushed"))).status_code \
        == 200
    bid, b = upload(server, mode, CSV)
    return server, bid, b


def test_composite_key_batch_reject(make_server):
    server, bid, b = batch_case(make_server, "reject")

    def check(b):
        assert counts(b) == ("completed", 5, 3, 0, 2), b
        assert batch_errors(server, bid) == [(4, "DUPLICATE_KEY", KEY, dup_message("a", "C-1")),
                                             (5, "DUPLICATE_KEY", KEY, dup_message("p", "C-9"))]
        assert stored(server, "reject") == [("a", "C-1", "x"), ("a", "C-2", "x"),
                                            ("b", "C-1", "x"), ("p", "C-9", "pushed")]
        with server.db() as db:
            assert db.query("SELECT count(*) FROM ds_cases_reject WHERE _batch_id = ?",
                            (bid,)) == [(3,)]
        items = dlq(server, "reject")
        assert [(i["row"], i["payload"], i["errors"][0]["message"]) for i in items] == \
            [(4, "a,C-1,y", dup_message("a", "C-1")), (5, "p,C-9,z", dup_message("p", "C-9"))]

    check(b)
    # processed again: the batch's own rows are found (its row range) and replaced, once
    assert server.post(f"/api/v1/batches/{bid}/reprocess").status_code == 200
    time.sleep(0.1)
    check(wait_batch(server, bid))


def test_composite_key_batch_skip(make_server):
    server, bid, b = batch_case(make_server, "skip")
    assert counts(b) == ("completed", 5, 3, 0, 2), b
    assert batch_errors(server, bid) == [] and dlq(server, "skip") == []
    assert stored(server, "skip") == [("a", "C-1", "x"), ("a", "C-2", "x"), ("b", "C-1", "x"),
                                      ("p", "C-9", "pushed")]


def test_composite_key_batch_upsert(make_server):
    server, bid, b = batch_case(make_server, "upsert")

    def check(b):
        assert counts(b) == ("completed", 5, 5, 0, 0), b
        assert stored(server, "upsert") == [("a", "C-1", "y"), ("a", "C-2", "x"),
                                            ("b", "C-1", "x"), ("p", "C-9", "z")]

    check(b)
    assert server.post(f"/api/v1/batches/{bid}/reprocess").status_code == 200
    time.sleep(0.1)
    check(wait_batch(server, bid))


# ---------------------------------------------------------------- DLQ retry

def test_composite_key_dlq_retry_of_a_duplicate(make_server):
    server = make_server(datasets_yaml=DATASETS)
    server.post_events("cases_reject", ndjson(row("a", "C-1"), row("a", "C-1", "second")))
    bid, b = upload(server, "reject", b"source,case_number,v\na,C-1,csv\n")
    assert counts(b) == ("completed", 1, 0, 0, 1), b
    pushed, from_csv = dlq(server, "reject")
    # still a duplicate: open, attempts + 1, the same error
    for e in (pushed, from_csv):
        r = server.post(f"/api/v1/dlq/{e['id']}/retry")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["attempts"]) == ("open", 1), r.text
        assert r.json()["errors"] == [{"field": KEY, "code": "DUPLICATE_KEY",
                                       "message": dup_message("a", "C-1")}]
    # the stored row gone, the retry stores the entry's row under the same key
    with server.db(readonly=False) as db:
        assert db.execute("DELETE FROM ds_cases_reject WHERE source = 'a'") == 1
    r = server.post(f"/api/v1/dlq/{from_csv['id']}/retry")
    assert r.status_code == 200 and r.json()["status"] == "resolved", r.text
    r = server.post(f"/api/v1/dlq/{pushed['id']}/retry")
    assert r.json()["status"] == "open" and r.json()["errors"][0]["code"] == "DUPLICATE_KEY"
    assert stored(server, "reject") == [("a", "C-1", "csv")]


# ---------------------------------------------------------------- configuration

def test_composite_key_change_on_reload_is_refused(make_server):
    """As for a key of one field: a stored dataset's key does not change (its order neither);
    the reload is refused, named in the log, and the old catalog stays."""
    server = make_server(datasets_yaml=DATASETS)
    server.write_config(datasets_yaml=DATASETS.replace("[source, case_number]",
                                                       "[case_number, source]", 1))
    server.proc.send_signal(signal.SIGHUP)
    line = wait_for(lambda: next((ln for ln in server.log_lines()
                                  if ln.get("msg") == "config reload refused"), None),
                    what="the refused reload")
    assert "dataset 'cases_reject': the key changed from " \
           "'[\"source\",\"case_number\"]' to '[\"case_number\",\"source\"]'" \
           in line["reason"], line
    assert server.get("/api/v1/datasets/cases_reject").json()["key"] == ["source", "case_number"]
    r = server.post_events("cases_reject", ndjson(row("a", "C-1"), row("a", "C-1")))
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1), r.text


def test_composite_key_must_be_required(make_server):
    server = make_server(datasets_yaml=DATASETS.replace("required: [case_number, source]",
                                                        "required: [case_number]", 1),
                         start=False)
    server.start(wait=False)
    assert server.proc.wait(30) == 2, server.logs()
    assert "datasets[0].key: 'source' is not in required" in server.logs(), server.logs()
