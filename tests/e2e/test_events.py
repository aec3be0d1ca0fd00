"""POST /api/v1/datasets/{name}/events - ingest, validation, storage, duplicates,
sources and idempotency, checked through the API answer, the stored rows (SQLite or
PostgreSQL: conftest's server.db()) and the DLQ (docs/api-contract-draft.md, "Events" and "Stored data")."""
import datetime
import json
import re

import pytest

from conftest import COLUMN_TYPES, VALUE_TYPES

EVENTS_PATH = "/api/v1/datasets/{}/events"
INGEST_KEYS = {"ingest_id", "received", "accepted", "rejected", "duplicates", "errors",
               "errors_truncated"}
ERROR_KEYS = {"row", "field", "code", "message"}
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# ---------------------------------------------------------------- helpers

def jrow(n, **kw):
    """A valid judgments row with key CASE-<n>."""
    row = {"case_number": f"CASE-{n:07d}", "amount": 10.5, "filed_date": "2023-01-15"}
    row.update(kw)
    return row


def ndjson(*rows):
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def db_rows(server, dataset):
    """All stored rows of ds_<dataset> as dicts, oldest first ([] if the table is absent)."""
    with server.db() as db:
        return db.dataset_rows(dataset)


def db_query(server, sql, args=()):
    with server.db() as db:
        return db.query(sql, args)


def dlq_items(server, **params):
    """Every DLQ item matching params (all pages), oldest first."""
    params.setdefault("limit", 1000)
    params.setdefault("order", "asc")
    items, after = [], None
    for _ in range(100):
        p = dict(params)
        if after:
            p["cursor"] = after
        r = server.get("/api/v1/dlq", params=p)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        after = body["next_cursor"]
        if after is None:
            return items
    raise AssertionError("DLQ pagination did not end")


def post(server, dataset, body, ctype="application/json", **kw):
    return server.post_events(dataset, body, ctype=ctype, **kw)


def assert_ingest_body(body, received, accepted, rejected, duplicates=0):
    assert set(body) == INGEST_KEYS, body
    assert isinstance(body["ingest_id"], str) and body["ingest_id"].startswith("ing_"), body
    assert (body["received"], body["accepted"], body["rejected"], body["duplicates"]) == \
        (received, accepted, rejected, duplicates), body
    assert isinstance(body["errors"], list)
    assert isinstance(body["errors_truncated"], bool)
    for e in body["errors"]:
        assert set(e) == ERROR_KEYS, e
        assert isinstance(e["row"], int) and e["row"] >= 1, e
        assert isinstance(e["message"], str) and e["message"], e


def assert_error_body(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def errs(body):
    """The errors of an ingest answer as a sorted list of (row, field, code)."""
    return sorted((e["row"], e["field"], e["code"]) for e in body["errors"])


# ---------------------------------------------------------------- accepted rows

def test_single_object_is_stored_with_typed_columns(server):
    row = jrow(1, amount=100, status="open", notes="première note")
    r = post(server, "judgments", row, headers={"X-Request-Id": "req-abc-123"})
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Request-Id") == "req-abc-123"
    body = r.json()
    assert_ingest_body(body, received=1, accepted=1, rejected=0)
    assert body["errors"] == []
    assert body["errors_truncated"] is False

    with server.db() as db:
        cols = {k: v.lower() for k, v in db.columns("ds_judgments").items()}
    # SQLite: TEXT / INTEGER / REAL; PostgreSQL: text / bigint / double precision
    T = COLUMN_TYPES
    for name, typ in {"case_number": T["string"], "amount": T["number"],
                      "filed_date": T["string"], "status": T["string"], "notes": T["string"],
                      "_id": T["integer"], "_ingest_id": T["string"], "_source": T["string"],
                      "_received_at": T["string"], "_extra": T["string"]}.items():
        assert cols.get(name) == typ, (name, cols)

    stored = db_rows(server, "judgments")
    assert len(stored) == 1
    s = stored[0]
    assert s["case_number"] == "CASE-0000001"
    assert s["amount"] == 100.0 and isinstance(s["amount"], float)
    with server.db() as db:  # SQLite: typeof() 'real'; PostgreSQL: 'double precision'
        assert db.query(f"SELECT {db.typeof('amount')} FROM ds_judgments") == \
            [(VALUE_TYPES["number"],)]
    assert s["filed_date"] == "2023-01-15"
    assert s["status"] == "open"
    assert s["notes"] == "première note"
    assert s["_ingest_id"] == body["ingest_id"]
    assert s["_source"] == "api"
    assert s["_extra"] is None
    assert RFC3339_MS_UTC.match(s["_received_at"]), s["_received_at"]
    t = datetime.datetime.strptime(s["_received_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = datetime.datetime.utcnow()
    assert abs((now - t).total_seconds()) < 60, (s["_received_at"], now)


def test_integer_and_boolean_columns(make_server):
    ds = """
  - name: typed
    schema:
      type: object
      properties:
        n: {type: integer}
        ok: {type: boolean}
        x: {type: number}
        s: {type: string}
"""
    server = make_server(datasets_yaml=ds)
    r = post(server, "typed", [{"n": 7, "ok": True, "x": 1.25, "s": "a"},
                               {"n": 3.0, "ok": False, "x": 2, "s": "b"}])
    assert r.status_code == 200, r.text
    assert_ingest_body(r.json(), 2, 2, 0)
    with server.db() as db:
        t = db.typeof
        got = db.query(f"SELECT n, {t('n')}, ok, {t('ok')}, x, {t('x')}, s "
                       "FROM ds_typed ORDER BY _id")
    # SQLite: integer / real; PostgreSQL: bigint / double precision (booleans are 0/1 integers)
    i, b, f = VALUE_TYPES["integer"], VALUE_TYPES["boolean"], VALUE_TYPES["number"]
    assert got == [(7, i, 1, b, 1.25, f, "a"),
                   (3, i, 0, b, 2.0, f, "b")]


def test_json_array(server):
    rows = [jrow(i) for i in range(1, 4)]
    r = post(server, "judgments", rows)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_ingest_body(body, 3, 3, 0)
    stored = db_rows(server, "judgments")
    assert [s["case_number"] for s in stored] == [x["case_number"] for x in rows]
    assert {s["_ingest_id"] for s in stored} == {body["ingest_id"]}


@pytest.mark.parametrize("ctype", ["application/x-ndjson", "application/ndjson",
                                   "application/x-ndjson; charset=utf-8"])
def test_ndjson(server, ctype):
    body = b"\n" + ndjson(jrow(1)) + b"\n  \n" + ndjson(jrow(2), jrow(3))[:-1]  # no final \n
    r = post(server, "judgments", body, ctype=ctype)
    assert r.status_code == 200, r.text
    assert_ingest_body(r.json(), 3, 3, 0)
    assert [s["case_number"] for s in db_rows(server, "judgments")] == \
        ["CASE-0000001", "CASE-0000002", "CASE-0000003"]


def test_json_with_charset_parameter(server):
    r = post(server, "judgments", jrow(1), ctype="application/json; charset=utf-8")
    assert r.status_code == 200, r.text
    assert len(db_rows(server, "judgments")) == 1


# ---------------------------------------------------------------- rejected rows

def test_mixed_rows_207_every_error_and_dlq_keeps_original_bytes(server):
    bad_line = (b'{"case_number": "BAD-1",  "amount": -5, "filed_date": "2023-02-29",'
                b' "status": "weird"}')
    body = ndjson(jrow(1)) + bad_line + b"\n" + ndjson(jrow(3))
    r = post(server, "judgments", body, ctype="application/x-ndjson")
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, received=3, accepted=2, rejected=1)
    assert errs(b) == sorted([(2, "case_number", "PATTERN_MISMATCH"),
                              (2, "amount", "OUT_OF_RANGE"),
                              (2, "filed_date", "INVALID_DATE_FORMAT"),
                              (2, "status", "NOT_IN_ENUM")])
    assert b["errors_truncated"] is False

    assert [s["case_number"] for s in db_rows(server, "judgments")] == \
        ["CASE-0000001", "CASE-0000003"]

    items = dlq_items(server, dataset="judgments")
    assert len(items) == 1
    it = items[0]
    assert it["dataset"] == "judgments"
    assert it["ingest_id"] == b["ingest_id"]
    assert it["row"] == 2
    assert it["status"] == "open"
    assert it["source"] == "api"
    assert it["payload_base64"] is False
    assert it["payload"].encode() == bad_line
    assert sorted((e["field"], e["code"]) for e in it["errors"]) == sorted([
        ("case_number", "PATTERN_MISMATCH"), ("amount", "OUT_OF_RANGE"),
        ("filed_date", "INVALID_DATE_FORMAT"), ("status", "NOT_IN_ENUM")])


def test_mixed_json_array_rows_counted_from_one(server):
    rows = [jrow(1, status="nope"), jrow(2), jrow(3, amount="7"), jrow(4)]
    r = post(server, "judgments", rows)
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 4, 2, 2)
    assert errs(b) == [(1, "status", "NOT_IN_ENUM"), (3, "amount", "INVALID_TYPE")]
    items = dlq_items(server, dataset="judgments")
    assert sorted(i["row"] for i in items) == [1, 3]
    by_row = {i["row"]: i for i in items}
    assert json.loads(by_row[1]["payload"]) == rows[0]
    assert json.loads(by_row[3]["payload"]) == rows[2]


def test_all_invalid_is_422_with_ingest_body(server):
    rows = [jrow(1, amount=-1), {"case_number": "CASE-0000002"}]
    r = post(server, "judgments", rows)
    assert r.status_code == 422, r.text
    b = r.json()
    assert_ingest_body(b, 2, 0, 2)
    assert errs(b) == [(1, "amount", "OUT_OF_RANGE"),
                       (2, "amount", "MISSING_REQUIRED_FIELD"),
                       (2, "filed_date", "MISSING_REQUIRED_FIELD")]
    assert db_rows(server, "judgments") == []
    assert len(dlq_items(server, dataset="judgments")) == 2


# One bad row (row 2) between good ones: exactly one error with that code and field.
FIELD_CASES = {
    "missing_required": ("MISSING_REQUIRED_FIELD",
                         {"case_number": "CASE-0000002", "filed_date": "2023-01-01"}, "amount"),
    "string_for_number": ("INVALID_TYPE", jrow(2, amount="12.5"), "amount"),
    "bool_for_string": ("INVALID_TYPE", jrow(2, notes=True), "notes"),
    "feb_29_2023": ("INVALID_DATE_FORMAT", jrow(2, filed_date="2023-02-29"), "filed_date"),
    "month_13": ("INVALID_DATE_FORMAT", jrow(2, filed_date="2023-13-01"), "filed_date"),
    "dd_mm_yyyy": ("INVALID_DATE_FORMAT", jrow(2, filed_date="15/01/2023"), "filed_date"),
    "below_minimum": ("OUT_OF_RANGE", jrow(2, amount=-0.01), "amount"),
    "over_max_length": ("TOO_LONG", jrow(2, notes="x" * 2001), "notes"),
    "pattern": ("PATTERN_MISMATCH", jrow(2, case_number="CASE-123"), "case_number"),
    "enum": ("NOT_IN_ENUM", jrow(2, status="archived"), "status"),
    "undeclared_with_additional_false": ("UNKNOWN_FIELD", jrow(2, judge="Smith"), "judge"),
}


@pytest.mark.parametrize("case", sorted(FIELD_CASES))
def test_field_error_code(server, case):
    code, bad, field = FIELD_CASES[case]
    r = post(server, "judgments", [jrow(1), bad, jrow(3)])
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 3, 2, 1)
    assert errs(b) == [(2, field, code)]
    items = dlq_items(server, dataset="judgments")
    assert len(items) == 1 and [e["code"] for e in items[0]["errors"]] == [code]
    assert json.loads(items[0]["payload"]) == bad
    assert [s["case_number"] for s in db_rows(server, "judgments")] == \
        ["CASE-0000001", "CASE-0000003"]


def test_boundaries_are_accepted(server):
    """minimum is inclusive, maxLength counts code points, a leap day is a date."""
    rows = [jrow(1, amount=0), jrow(2, notes="é" * 2000), jrow(3, filed_date="2024-02-29"),
            jrow(4, notes="€" * 2000, status="pending")]
    r = post(server, "judgments", rows)
    assert r.status_code == 200, r.text
    assert_ingest_body(r.json(), 4, 4, 0)
    assert len(db_rows(server, "judgments")) == 4


def test_pattern_anchors_are_honoured(server):
    # The pattern is ^CASE-[0-9]{7}$: an extra digit or a prefix must not match.
    r = post(server, "judgments", [jrow(1, case_number="CASE-00000011"),
                                   jrow(2, case_number="xCASE-0000002")])
    assert r.status_code == 422, r.text
    assert errs(r.json()) == [(1, "case_number", "PATTERN_MISMATCH"),
                              (2, "case_number", "PATTERN_MISMATCH")]


def test_ndjson_malformed_line_is_one_row_error(server):
    body = ndjson(jrow(1)) + b"\n" + b'{"case_number": "CASE-0000002", "amount": \n' + \
        ndjson(jrow(3))
    r = post(server, "judgments", body, ctype="application/x-ndjson")
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 3, 2, 1)
    assert errs(b) == [(2, None, "MALFORMED_JSON")]
    items = dlq_items(server, dataset="judgments")
    assert len(items) == 1
    assert items[0]["payload"] == '{"case_number": "CASE-0000002", "amount": '


def test_ndjson_invalid_utf8_line_is_one_row_error(server):
    bad = b'{"id": 2, "name": "caf\xe9 \xff"}'
    body = ndjson({"id": 1, "name": "a"}) + bad + b"\n" + ndjson({"id": 3, "name": "c"})
    r = post(server, "events", body, ctype="application/x-ndjson")
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 3, 2, 1)
    assert errs(b) == [(2, None, "INVALID_UTF8")]
    assert [s["id"] for s in db_rows(server, "events")] == [1, 3]


def test_ndjson_row_too_large(server):
    big = {"id": 2, "name": "x" * (1024 * 1024 + 16)}  # default limits.max_row_bytes = 1M
    body = ndjson({"id": 1}, big, {"id": 3})
    r = post(server, "events", body, ctype="application/x-ndjson")
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 3, 2, 1)
    assert errs(b) == [(2, None, "ROW_TOO_LARGE")]
    assert [s["id"] for s in db_rows(server, "events")] == [1, 3]


def test_row_that_is_not_an_object(server):
    r = post(server, "events", [{"id": 1}, 5, ["a"], {"id": 4}])
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 4, 2, 2)
    assert errs(b) == [(2, None, "NOT_AN_OBJECT"), (3, None, "NOT_AN_OBJECT")]


# A top-level scalar is well-formed JSON (RFC 8259) of the wrong shape: one row refused as
# NOT_AN_OBJECT (422, kept in the DLQ with its bytes), as a scalar array element is, so a
# client can tell it from a syntax error (400 MALFORMED_JSON).
@pytest.mark.parametrize("body, kind", [(b'"x"', "string"), (b"1", "integer"),
                                        (b"true", "boolean"), (b"null", "null"),
                                        (b'" "', "string"), (b' -2.5e3\n', "number")])
def test_top_level_scalar_is_not_an_object(server, body, kind):
    r = post(server, "events", body)
    assert r.status_code == 422, r.text
    b = r.json()
    assert_ingest_body(b, 1, 0, 1)
    assert errs(b) == [(1, None, "NOT_AN_OBJECT")]
    assert b["errors"][0]["message"] == f"expected a JSON object, got {kind}", b
    assert db_rows(server, "events") == []
    items = dlq_items(server, status="all")
    assert [it["payload"].encode() for it in items] == [body.strip()]


def test_ndjson_scalar_lines_are_not_objects(server):
    body = b'{"id": 1}\n"x"\n1\ntrue\nnull\n" "\n{"id": 7}\n'
    r = post(server, "events", body, ctype="application/x-ndjson")
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 7, 2, 5)
    assert errs(b) == [(i, None, "NOT_AN_OBJECT") for i in range(2, 7)]
    assert [s["id"] for s in db_rows(server, "events")] == [1, 7]


def test_errors_truncated_after_100(server):
    # 60 rows with 2 errors each = 120 errors; only the first 100 are returned.
    rows = [jrow(i, amount=-1, status="bad") for i in range(1, 61)]
    r = post(server, "judgments", rows)
    assert r.status_code == 422, r.text
    b = r.json()
    assert_ingest_body(b, 60, 0, 60)
    assert len(b["errors"]) == 100
    assert b["errors_truncated"] is True
    assert b["errors"][0]["row"] == 1 and b["errors"][-1]["row"] == 50
    assert [e["row"] for e in b["errors"]] == sorted(e["row"] for e in b["errors"])
    # The DLQ keeps every row with all its errors.
    items = dlq_items(server, dataset="judgments")
    assert len(items) == 60
    assert all(len(i["errors"]) == 2 for i in items)


def test_exactly_100_errors_not_truncated(server):
    rows = [jrow(i, amount=-1, status="bad") for i in range(1, 51)] + [jrow(99)]
    r = post(server, "judgments", rows)
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 51, 1, 50)
    assert len(b["errors"]) == 100
    assert b["errors_truncated"] is False


# ---------------------------------------------------------------- request-level errors

DEEP = '{"id": 1, "x": ' + "[" * 100 + "]" * 100 + "}"

REQUEST_ERRORS = {
    "malformed": (b'{"id": 1', "application/json", 400, "MALFORMED_JSON"),
    "trailing_garbage": (b'{"id": 1} x', "application/json", 400, "MALFORMED_JSON"),
    "top_level_not_json": (b"tru", "application/json", 400, "MALFORMED_JSON"),
    "top_level_bad_scalar": (b'"a" 1', "application/json", 400, "MALFORMED_JSON"),
    "invalid_utf8": (b'{"id": 1, "name": "\xff\xfe"}', "application/json", 400,
                     "INVALID_UTF8"),
    "too_deep": (DEEP.encode(), "application/json", 400, "NESTING_TOO_DEEP"),
    "empty_body": (b"", "application/json", 400, "BAD_REQUEST"),
    "empty_array": (b"[]", "application/json", 400, "BAD_REQUEST"),
    "blank_ndjson": (b"\n  \n\n", "application/x-ndjson", 400, "BAD_REQUEST"),
    "text_plain": (b'{"id": 1}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "xml": (b'{"id": 1}', "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE"),
    "form": (b"id=1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
}


@pytest.mark.parametrize("case", sorted(REQUEST_ERRORS))
def test_request_level_errors_store_nothing(server, case):
    body, ctype, status, code = REQUEST_ERRORS[case]
    r = post(server, "events", body, ctype=ctype)
    assert_error_body(r, status, code)
    assert db_rows(server, "events") == []
    assert dlq_items(server, status="all") == []


def test_nesting_within_limit_is_fine(server):
    body = '{"id": 1, "x": ' + "[" * 20 + "]" * 20 + "}"
    r = post(server, "events", body.encode())
    assert r.status_code == 200, r.text


def test_unknown_dataset_404(server):
    r = post(server, "nope", {"id": 1})
    assert_error_body(r, 404, "DATASET_NOT_FOUND")


# ---------------------------------------------------------------- undeclared fields

def test_undeclared_fields_kept_in_extra(server):
    rows = [{"id": 1, "name": "a", "color": "red", "nested": {"x": [1, 2.5, None]},
             "flag": True},
            {"id": 2, "name": "b"}]
    r = post(server, "events", rows)
    assert r.status_code == 200, r.text
    stored = db_rows(server, "events")
    assert [(s["id"], s["name"]) for s in stored] == [(1, "a"), (2, "b")]
    assert json.loads(stored[0]["_extra"]) == {"color": "red", "nested": {"x": [1, 2.5, None]},
                                               "flag": True}
    assert stored[1]["_extra"] is None
    assert "color" not in stored[0]


def test_schema_without_properties_keeps_everything(server):
    row = {"a": 1, "b": "two", "c": [3], "d": {"e": False}}
    r = post(server, "anything", row)
    assert r.status_code == 200, r.text
    stored = db_rows(server, "anything")
    assert len(stored) == 1
    assert json.loads(stored[0]["_extra"]) == row


# ---------------------------------------------------------------- duplicates

def test_on_duplicate_reject(server):
    r = post(server, "judgments", jrow(1, amount=1))
    assert r.status_code == 200, r.text
    r = post(server, "judgments", jrow(1, amount=2))
    assert r.status_code == 422, r.text
    b = r.json()
    assert_ingest_body(b, 1, 0, 1)
    assert errs(b) == [(1, "case_number", "DUPLICATE_KEY")]
    stored = db_rows(server, "judgments")
    assert [(s["case_number"], s["amount"]) for s in stored] == [("CASE-0000001", 1.0)]
    items = dlq_items(server, dataset="judgments", error_code="DUPLICATE_KEY")
    assert len(items) == 1 and json.loads(items[0]["payload"])["amount"] == 2


def test_on_duplicate_reject_within_one_request(server):
    r = post(server, "judgments", [jrow(5, amount=1), jrow(6), jrow(5, amount=2)])
    assert r.status_code == 207, r.text
    b = r.json()
    assert_ingest_body(b, 3, 2, 1)
    assert errs(b) == [(3, "case_number", "DUPLICATE_KEY")]
    stored = db_rows(server, "judgments")
    assert sorted((s["case_number"], s["amount"]) for s in stored) == \
        [("CASE-0000005", 1.0), ("CASE-0000006", 10.5)]


def test_on_duplicate_upsert(server):
    r = post(server, "upserts", {"id": 1, "v": "a"})
    assert r.status_code == 200, r.text
    r = post(server, "upserts", {"id": 1, "v": "b"})
    assert r.status_code == 200, r.text
    assert_ingest_body(r.json(), 1, 1, 0, 0)
    stored = db_rows(server, "upserts")
    assert [(s["id"], s["v"]) for s in stored] == [(1, "b")]
    assert stored[0]["_ingest_id"] == r.json()["ingest_id"]


def test_on_duplicate_upsert_within_one_request(server):
    r = post(server, "upserts", [{"id": 2, "v": "x"}, {"id": 3, "v": "z"}, {"id": 2, "v": "y"}])
    assert r.status_code == 200, r.text
    assert_ingest_body(r.json(), 3, 3, 0, 0)
    assert sorted((s["id"], s["v"]) for s in db_rows(server, "upserts")) == [(2, "y"), (3, "z")]


def test_on_duplicate_skip(server):
    r = post(server, "skips", {"id": 1, "v": "a"})
    assert r.status_code == 200, r.text
    r = post(server, "skips", [{"id": 1, "v": "b"}, {"id": 2, "v": "c"}])
    assert r.status_code in (200, 207), r.text
    b = r.json()
    assert_ingest_body(b, 2, 1, 0, 1)
    assert b["errors"] == []
    assert sorted((s["id"], s["v"]) for s in db_rows(server, "skips")) == [(1, "a"), (2, "c")]
    assert dlq_items(server, dataset="skips", status="all") == []


def test_on_duplicate_skip_within_one_request(server):
    r = post(server, "skips", [{"id": 5, "v": "first"}, {"id": 5, "v": "second"}])
    assert r.status_code in (200, 207), r.text
    assert_ingest_body(r.json(), 2, 1, 0, 1)
    assert [(s["id"], s["v"]) for s in db_rows(server, "skips")] == [(5, "first")]
    assert dlq_items(server, dataset="skips", status="all") == []


# ---------------------------------------------------------------- source

def test_source_query_header_and_default(server):
    r1 = post(server, "events", {"id": 1}, params={"source": "nightly-batch"})
    r2 = post(server, "events", {"id": 2}, headers={"X-Sluice-Source": "crm-sync"})
    r3 = post(server, "events", {"id": 3})
    r4 = post(server, "events", [{"id": "bad"}], params={"source": "nightly-batch"})
    assert [r.status_code for r in (r1, r2, r3, r4)] == [200, 200, 200, 422]
    assert [(s["id"], s["_source"]) for s in db_rows(server, "events")] == \
        [(1, "nightly-batch"), (2, "crm-sync"), (3, "api")]
    items = dlq_items(server, dataset="events")
    assert [i["source"] for i in items] == ["nightly-batch"]


# ---------------------------------------------------------------- idempotency

def test_idempotency_key_replay(server):
    body = json.dumps([jrow(1), jrow(2, amount=-1)])
    h = {"Idempotency-Key": "key-001"}
    r1 = post(server, "judgments", body, headers=h)
    assert r1.status_code == 207, r1.text
    assert r1.headers.get("Idempotent-Replayed", "false").lower() != "true"
    r2 = post(server, "judgments", body, headers=h)
    assert r2.status_code == 207, r2.text
    assert r2.headers.get("Idempotent-Replayed", "").lower() == "true"
    assert r2.json() == r1.json()
    assert r2.json()["ingest_id"] == r1.json()["ingest_id"]
    assert len(db_rows(server, "judgments")) == 1
    assert len(dlq_items(server, dataset="judgments")) == 1


def test_idempotency_key_other_body_409(server):
    h = {"Idempotency-Key": "key-002"}
    r1 = post(server, "events", [{"id": 1}], headers=h)
    assert r1.status_code == 200, r1.text
    r2 = post(server, "events", [{"id": 2}], headers=h)
    assert_error_body(r2, 409, "IDEMPOTENCY_KEY_REUSED")
    assert [s["id"] for s in db_rows(server, "events")] == [1]


def test_idempotency_keys_are_per_dataset(server):
    h = {"Idempotency-Key": "shared-key"}
    r1 = post(server, "events", [{"id": 1}], headers=h)
    r2 = post(server, "anything", [{"id": 1}], headers=h)
    assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
    assert r2.headers.get("Idempotent-Replayed", "false").lower() != "true"
    assert r1.json()["ingest_id"] != r2.json()["ingest_id"]
    assert len(db_rows(server, "events")) == 1 and len(db_rows(server, "anything")) == 1


def test_different_keys_store_twice(server):
    for k in ("k-a", "k-b"):
        r = post(server, "events", [{"id": 1}], headers={"Idempotency-Key": k})
        assert r.status_code == 200, r.text
    assert len(db_rows(server, "events")) == 2


def test_idempotency_key_survives_restart(server):
    body = json.dumps([{"id": 1, "name": "x"}])
    h = {"Idempotency-Key": "key-restart"}
    r1 = post(server, "events", body, headers=h)
    assert r1.status_code == 200, r1.text
    server.restart()
    r2 = post(server, "events", body, headers=h)
    assert r2.status_code == 200, r2.text
    assert r2.headers.get("Idempotent-Replayed", "").lower() == "true"
    assert r2.json() == r1.json()
    assert len(db_rows(server, "events")) == 1
    r3 = post(server, "events", json.dumps([{"id": 2}]), headers=h)
    assert_error_body(r3, 409, "IDEMPOTENCY_KEY_REUSED")
