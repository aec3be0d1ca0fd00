"""JSONTestSuite (../shared/suites/JSONTestSuite) against POST /api/v1/datasets/anything/events.

Every file of test_parsing/ is posted, unchanged, as the body of one JSON request
(Content-Type: application/json) to the free-form dataset `anything` (schema {type: object}).

  n_  must be refused as malformed: 400 MALFORMED_JSON / INVALID_UTF8 / NESTING_TOO_DEEP
      (or a 422 whose errors are all MALFORMED_JSON / INVALID_UTF8; 400 BAD_REQUEST "no rows"
      for an empty or blank body, as the contract says); never a 2xx; nothing
      stored; no crash, no hang.
  y_  must parse: never a syntax error.  A top-level scalar is one row refused with the
      row error NOT_AN_OBJECT (422), as array elements that are not objects are; objects
      are stored and read back equal.  Documented exceptions (docs/json-conformance.md):
      duplicate keys and an escaped NUL are 422 row errors (DUPLICATE_FIELD,
      NUL_CHARACTER), an empty array is 400 BAD_REQUEST ("no rows").
  i_  the decision in I_DECISIONS below (docs/json-conformance.md), the same every run.
  test_transform/  the decisions in TRANSFORM_DECISIONS: each file as-is, and its value
      wrapped in an object {"v": VALUE} so that what is stored can be read back.

The whole category runs in one server over one requests.Session.
"""
import glob
import json
import os

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE = os.path.join(ROOT, "..", "shared", "suites", "JSONTestSuite")
PARSING = os.path.join(SUITE, "test_parsing")
TRANSFORM = os.path.join(SUITE, "test_transform")

SYNTAX_CODES = {"MALFORMED_JSON", "INVALID_UTF8"}
N_CODES = {"MALFORMED_JSON", "INVALID_UTF8", "NESTING_TOO_DEEP"}

# y_ files that parse but are refused on purpose, as a row error (422, the row goes to the
# DLQ), never as a syntax error (see docs/json-conformance.md).
Y_REFUSED = {
    "y_object_duplicated_key.json": "DUPLICATE_FIELD",
    "y_object_duplicated_key_and_value.json": "DUPLICATE_FIELD",
    "y_object_escaped_null_in_key.json": "NUL_CHARACTER",
    "y_string_null_escape.json": "NUL_CHARACTER",
}

# i_ decisions: file -> (status, code).  For 422 the code is the code of every row error
# (the file parsed, its elements are not objects); for 400 the error code; 200 -> None.
# Observed against the server and checked for sanity; see docs/json-conformance.md.
I_DECISIONS = {
    # numbers: a value that cannot be held exactly (integer beyond int64, real overflowing
    # a double) is refused; a real that underflows parses (to 0.0)
    "i_number_double_huge_neg_exp.json": (422, "NOT_AN_OBJECT"),
    "i_number_huge_exp.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_neg_int_huge_exp.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_pos_double_huge_exp.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_real_neg_overflow.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_real_pos_overflow.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_real_underflow.json": (422, "NOT_AN_OBJECT"),
    "i_number_too_big_neg_int.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_too_big_pos_int.json": (422, "NUMBER_TOO_LARGE"),
    "i_number_very_big_negative_int.json": (422, "NUMBER_TOO_LARGE"),
    # escaped lone / broken surrogates: refused as malformed JSON
    "i_object_key_lone_2nd_surrogate.json": (400, "MALFORMED_JSON"),
    "i_string_1st_surrogate_but_2nd_missing.json": (400, "MALFORMED_JSON"),
    "i_string_1st_valid_surrogate_2nd_invalid.json": (400, "MALFORMED_JSON"),
    "i_string_incomplete_surrogate_and_escape_valid.json": (400, "MALFORMED_JSON"),
    "i_string_incomplete_surrogate_pair.json": (400, "MALFORMED_JSON"),
    "i_string_incomplete_surrogates_escape_valid.json": (400, "MALFORMED_JSON"),
    "i_string_invalid_lonely_surrogate.json": (400, "MALFORMED_JSON"),
    "i_string_invalid_surrogate.json": (400, "MALFORMED_JSON"),
    "i_string_inverted_surrogates_U+1D11E.json": (400, "MALFORMED_JSON"),
    "i_string_lone_second_surrogate.json": (400, "MALFORMED_JSON"),
    # bytes that are not UTF-8 (including UTF-16 and Latin-1 text): INVALID_UTF8
    "i_string_UTF-16LE_with_BOM.json": (400, "INVALID_UTF8"),
    "i_string_UTF-8_invalid_sequence.json": (400, "INVALID_UTF8"),
    "i_string_UTF8_surrogate_U+D800.json": (400, "INVALID_UTF8"),
    "i_string_invalid_utf-8.json": (400, "INVALID_UTF8"),
    "i_string_iso_latin_1.json": (400, "INVALID_UTF8"),
    "i_string_lone_utf8_continuation_byte.json": (400, "INVALID_UTF8"),
    "i_string_not_in_unicode_range.json": (400, "INVALID_UTF8"),
    "i_string_overlong_sequence_2_bytes.json": (400, "INVALID_UTF8"),
    "i_string_overlong_sequence_6_bytes.json": (400, "INVALID_UTF8"),
    "i_string_overlong_sequence_6_bytes_null.json": (400, "INVALID_UTF8"),
    "i_string_truncated-utf-8.json": (400, "INVALID_UTF8"),
    "i_string_utf16BE_no_BOM.json": (400, "INVALID_UTF8"),
    "i_string_utf16LE_no_BOM.json": (400, "INVALID_UTF8"),
    # structure: 500 levels is beyond limits.max_json_depth (64); a UTF-8 BOM is not JSON
    "i_structure_500_nested_arrays.json": (400, "NESTING_TOO_DEEP"),
    "i_structure_UTF-8_BOM_empty_object.json": (400, "MALFORMED_JSON"),
}

# test_transform decisions: file -> (as_is, wrapped)
#   as_is:   (status, code) for the file posted unchanged (arrays of scalars: 422 NOT_AN_OBJECT
#            when the value is accepted)
#   wrapped: ("stored", value) -- {"v": VALUE} gives 200 and _extra reads back {"v": value}
#            with the same JSON type (int / float), or (400, code) -- refused.
# For the object files "wrapped" is the object itself: ("stored", dict) or (400, code).
TRANSFORM_DECISIONS = {
    "number_-9223372036854775808.json": ((422, "NOT_AN_OBJECT"), ("stored", -9223372036854775808)),
    "number_-9223372036854775809.json": ((422, "NUMBER_TOO_LARGE"), (422, "NUMBER_TOO_LARGE")),
    "number_1.0.json": ((422, "NOT_AN_OBJECT"), ("stored", 1.0)),
    "number_1.000000000000000005.json": ((422, "NOT_AN_OBJECT"), ("stored", 1.0)),
    "number_1000000000000000.json": ((422, "NOT_AN_OBJECT"), ("stored", 1000000000000000)),
    "number_10000000000000000999.json": ((422, "NUMBER_TOO_LARGE"), (422, "NUMBER_TOO_LARGE")),
    "number_1e-999.json": ((422, "NOT_AN_OBJECT"), ("stored", 0.0)),
    "number_1e6.json": ((422, "NOT_AN_OBJECT"), ("stored", 1000000.0)),
    "number_9223372036854775807.json": ((422, "NOT_AN_OBJECT"), ("stored", 9223372036854775807)),
    "number_9223372036854775808.json": ((422, "NUMBER_TOO_LARGE"), (422, "NUMBER_TOO_LARGE")),
    "object_key_nfc_nfd.json": ((200, None), ("stored", {"\u00e9": "NFC", "e\u0301": "NFD"})),
    "object_key_nfd_nfc.json": ((200, None), ("stored", {"e\u0301": "NFD", "\u00e9": "NFC"})),
    "object_same_key_different_values.json": ((422, "DUPLICATE_FIELD"), (422, "DUPLICATE_FIELD")),
    "object_same_key_same_value.json": ((422, "DUPLICATE_FIELD"), (422, "DUPLICATE_FIELD")),
    "object_same_key_unclear_values.json": ((422, "DUPLICATE_FIELD"), (422, "DUPLICATE_FIELD")),
    "string_1_escaped_invalid_codepoint.json": ((400, "MALFORMED_JSON"), (400, "MALFORMED_JSON")),
    "string_1_invalid_codepoint.json": ((400, "INVALID_UTF8"), (400, "INVALID_UTF8")),
    "string_2_escaped_invalid_codepoints.json": ((400, "MALFORMED_JSON"), (400, "MALFORMED_JSON")),
    "string_2_invalid_codepoints.json": ((400, "INVALID_UTF8"), (400, "INVALID_UTF8")),
    "string_3_escaped_invalid_codepoints.json": ((400, "MALFORMED_JSON"), (400, "MALFORMED_JSON")),
    "string_3_invalid_codepoints.json": ((400, "INVALID_UTF8"), (400, "INVALID_UTF8")),
    "string_with_escaped_NULL.json": ((422, "NUL_CHARACTER"), (422, "NUL_CHARACTER")),
}


# ---------------------------------------------------------------------------- helpers

def suite_files(folder, prefix=""):
    return sorted(glob.glob(os.path.join(folder, prefix + "*.json")))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def events_url(server):
    return f"{server.url}/api/v1/datasets/anything/events"


def post(session, server, body, source="jsontestsuite", timeout=30):
    """POST one JSON body; returns (status, parsed body or None, raw text).
    A keep-alive connection the server closed after an error answer is retried once on a
    fresh connection; a second failure is reported as status None."""
    headers = {"Content-Type": "application/json", "X-Sluice-Source": source}
    last = None
    for _ in range(2):
        try:
            r = session.post(events_url(server), data=body, headers=headers, timeout=timeout)
        except requests.ConnectionError as e:
            last = e
            session.close()
            continue
        try:
            parsed = r.json()
        except ValueError:
            parsed = None
        return r.status_code, parsed, r.text[:300]
    return None, None, f"no answer: {last!r}"


def err_code(parsed):
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return parsed["error"].get("code")
    return None


def row_codes(parsed):
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list):
        return [e.get("code") for e in parsed["errors"] if isinstance(e, dict)]
    return []


def outcome(status, parsed):
    """(status, code) in the form of I_DECISIONS / TRANSFORM_DECISIONS."""
    if status == 400 or (status is not None and status >= 400 and status != 422):
        return (status, err_code(parsed))
    if status == 422:
        codes = set(row_codes(parsed))
        return (422, codes.pop() if len(codes) == 1 else tuple(sorted(codes)))
    return (status, None)


def db_query(server, sql, args=()):
    with server.db() as db:
        return db.query(sql, args)


def stored_count(server):
    with server.db() as db:
        if not db.table_exists("ds_anything"):
            return 0
        return db.query("SELECT COUNT(*) FROM ds_anything")[0][0]


def stored_extras(server, ingest_id):
    rows = db_query(server, "SELECT _extra FROM ds_anything WHERE _ingest_id = ? ORDER BY _id",
                    (ingest_id,))
    return [None if r[0] is None else json.loads(r[0]) for r in rows]


def same_json(a, b):
    """Equal values with the same JSON kind (an int is not a float, 1 is not true)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def loose_json(a, b):
    """Equal values, ints and floats compared by value (y_ files: 1E22 may come back 1e+22)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(loose_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(loose_json(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def healthy(server):
    try:
        r = requests.get(server.url + "/healthz", timeout=10)
        return r.status_code == 200 and r.json().get("status") == "ok"
    except (requests.RequestException, ValueError):
        return False


def report(problems):
    return f"{len(problems)} problem(s):\n" + "\n".join(problems)


# ---------------------------------------------------------------------------- tests

def test_suite_is_there():
    assert len(suite_files(PARSING, "n_")) == 188
    assert len(suite_files(PARSING, "y_")) == 95
    assert len(suite_files(PARSING, "i_")) == 35
    assert len(suite_files(TRANSFORM)) == 22
    assert sorted(I_DECISIONS) == [os.path.basename(p) for p in suite_files(PARSING, "i_")]
    assert sorted(TRANSFORM_DECISIONS) == [os.path.basename(p) for p in suite_files(TRANSFORM)]


def test_n_files_are_refused_and_nothing_stored(server):
    problems = []
    with requests.Session() as s:
        for path in suite_files(PARSING, "n_"):
            name = os.path.basename(path)
            before = stored_count(server)
            raw = read(path)
            status, parsed, text = post(s, server, raw, source=name)
            # an empty or blank body holds no rows: 400 BAD_REQUEST by the contract
            codes = N_CODES | ({"BAD_REQUEST"} if not raw.strip(b" \t\r\n") else set())
            if status == 400:
                if err_code(parsed) not in codes:
                    problems.append(f"{name}: 400 with code {err_code(parsed)!r}: {text}")
            elif status == 422:
                codes = row_codes(parsed)
                if not codes or not set(codes) <= SYNTAX_CODES:
                    problems.append(f"{name}: 422 with row errors {codes}: {text}")
            else:
                problems.append(f"{name}: status {status}: {text}")
            after = stored_count(server)
            if after != before:
                problems.append(f"{name}: {after - before} row(s) stored")
            if status is None and not healthy(server):
                problems.append(f"{name}: server no longer answers /healthz")
                break
    assert healthy(server), "server does not answer /healthz after the n_ files"
    assert stored_count(server) == 0
    assert not problems, report(problems)


def test_deep_nesting_neither_crashes_nor_hangs(server):
    for name in ("n_structure_100000_opening_arrays.json", "n_structure_open_array_object.json",
                 "i_structure_500_nested_arrays.json"):
        with requests.Session() as s:
            status, parsed, text = post(s, server, read(os.path.join(PARSING, name)), timeout=20)
        assert status == 400, f"{name}: {status} {text}"
        assert err_code(parsed) in N_CODES, f"{name}: {text}"
        assert healthy(server), f"server does not answer /healthz after {name}"
        assert server.proc.poll() is None, f"server exited after {name}"
    # a deep body sent as NDJSON (one line) is refused as well, and the server lives on
    body = read(os.path.join(PARSING, "n_structure_100000_opening_arrays.json"))
    r = requests.post(events_url(server), data=body,
                      headers={"Content-Type": "application/x-ndjson"}, timeout=20)
    assert not 200 <= r.status_code < 300, r.text[:300]
    assert healthy(server)
    assert stored_count(server) == 0


def test_y_files_parse(server):
    problems = []
    with requests.Session() as s:
        for path in suite_files(PARSING, "y_"):
            name = os.path.basename(path)
            raw = read(path)
            value = json.loads(raw)
            before = stored_count(server)
            status, parsed, text = post(s, server, raw, source=name)
            code = err_code(parsed)
            stored = stored_count(server) - before
            if name in Y_REFUSED:
                # documented decision: a row error, nothing stored
                got = sorted((e.get("row"), e.get("code"), e.get("field"))
                             for e in (parsed or {}).get("errors") or [])
                if status != 422 or got != [(1, Y_REFUSED[name], None)] or stored:
                    problems.append(f"{name}: expected 422 with {Y_REFUSED[name]} at row 1, "
                                    f"got {status} {text}, {stored} stored")
                continue
            if not isinstance(value, (dict, list)):
                # top-level scalar: valid JSON of the wrong shape, one row refused as
                # NOT_AN_OBJECT (422), as a scalar array element is; never a syntax error
                got = [(e.get("row"), e.get("code"), e.get("field"))
                       for e in (parsed or {}).get("errors") or []]
                if status != 422 or got != [(1, "NOT_AN_OBJECT", None)] or stored:
                    problems.append(f"{name}: top-level scalar: expected 422 with NOT_AN_OBJECT "
                                    f"at row 1, got {status} {text}, {stored} stored")
                continue
            if status == 400 and code in SYNTAX_CODES | {"NESTING_TOO_DEEP"}:
                problems.append(f"{name}: valid JSON refused as a syntax error: {text}")
                continue
            rows = value if isinstance(value, list) else [value]
            if not rows:
                if (status, code) != (400, "BAD_REQUEST") or stored:
                    problems.append(f"{name}: empty array: expected 400 BAD_REQUEST, got "
                                    f"{status} {text}")
                continue
            objs = [(i + 1, r) for i, r in enumerate(rows) if isinstance(r, dict)]
            others = [i + 1 for i, r in enumerate(rows) if not isinstance(r, dict)]
            want = 200 if not others else (422 if not objs else 207)
            if status != want:
                problems.append(f"{name}: expected {want}, got {status} {text}")
                continue
            if (parsed.get("received"), parsed.get("accepted"), parsed.get("rejected")) != \
                    (len(rows), len(objs), len(others)):
                problems.append(f"{name}: counts {text}")
            errs = parsed.get("errors") or []
            got = sorted((e.get("row"), e.get("code"), e.get("field")) for e in errs)
            if got != [(i, "NOT_AN_OBJECT", None) for i in others]:
                problems.append(f"{name}: errors {got}, expected NOT_AN_OBJECT at rows {others}")
            if stored != len(objs):
                problems.append(f"{name}: {stored} rows stored, expected {len(objs)}")
                continue
            if objs:
                extras = stored_extras(server, parsed.get("ingest_id"))
                expect = [o if o else None for _, o in objs]
                if len(extras) != len(expect) or not all(
                        (e is None and x is None) or (e is not None and x is not None
                                                      and loose_json(e, x))
                        for e, x in zip(extras, expect)):
                    problems.append(f"{name}: stored {extras!r}, expected {expect!r}")
    assert healthy(server)
    assert not problems, report(problems)


def test_i_files_follow_the_documented_decision(server):
    problems = []
    with requests.Session() as s:
        for path in suite_files(PARSING, "i_"):
            name = os.path.basename(path)
            raw = read(path)
            before = stored_count(server)
            status, parsed, text = post(s, server, raw, source=name)
            got = outcome(status, parsed)
            stored = stored_count(server) - before
            want = I_DECISIONS[name]
            if got != want:
                problems.append(f"{name}: expected {want}, got {got}: {text}")
            # sanity, independent of the table: bytes that are not UTF-8 are INVALID_UTF8
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                if got != (400, "INVALID_UTF8"):
                    problems.append(f"{name}: not UTF-8 but answered {got}")
            want_stored = 1 if want[0] == 200 else 0
            if stored != want_stored:
                problems.append(f"{name}: {stored} rows stored, expected {want_stored}")
    assert healthy(server)
    assert not problems, report(problems)


def wrapped_body(raw):
    """The value of a one-element array file as {"v": VALUE}; object files unchanged."""
    text = raw.strip()
    if text.startswith(b"[") and text.endswith(b"]"):
        return b'{"v":' + text[1:-1] + b"}"
    return text


def test_transform_decisions(server):
    problems = []
    with requests.Session() as s:
        for path in suite_files(TRANSFORM):
            name = os.path.basename(path)
            raw = read(path)
            (want_as_is, want_wrapped) = TRANSFORM_DECISIONS[name]

            before = stored_count(server)
            status, parsed, text = post(s, server, raw, source=name)
            got = outcome(status, parsed)
            if got != want_as_is:
                problems.append(f"{name} as-is: expected {want_as_is}, got {got}: {text}")
            if stored_count(server) - before != (1 if want_as_is[0] == 200 else 0):
                problems.append(f"{name} as-is: wrong number of rows stored")

            before = stored_count(server)
            body = wrapped_body(raw)
            status, parsed, text = post(s, server, body, source=name + "#wrapped")
            stored = stored_count(server) - before
            if want_wrapped[0] == "stored":
                expect = want_wrapped[1] if isinstance(want_wrapped[1], dict) \
                    else {"v": want_wrapped[1]}
                if status != 200 or stored != 1:
                    problems.append(f"{name} wrapped {body[:60]!r}: expected 200 and 1 row, "
                                    f"got {status} {text}, {stored} stored")
                    continue
                extras = stored_extras(server, parsed.get("ingest_id"))
                if len(extras) != 1 or not same_json(extras[0], expect):
                    problems.append(f"{name} wrapped: stored {extras!r}, expected {expect!r}")
            else:
                got = outcome(status, parsed)
                if got != want_wrapped or stored:
                    problems.append(f"{name} wrapped {body[:60]!r}: expected {want_wrapped}, "
                                    f"got {got} {text}, {stored} stored")
                elif got[0] == 422:
                    # valid JSON refused as a row: kept in the DLQ with the exact bytes
                    d = s.get(f"{server.url}/api/v1/dlq", timeout=30,
                              params={"dataset": "anything", "error_code": got[1],
                                      "limit": 1000})
                    items = [i for i in d.json().get("items", [])
                             if i.get("ingest_id") == parsed.get("ingest_id")] \
                        if d.status_code == 200 else []
                    if len(items) != 1 or items[0].get("payload") != body.decode() \
                            or items[0].get("payload_base64") is not False:
                        problems.append(f"{name} wrapped: DLQ entry {items} ({d.status_code})")
    assert healthy(server)
    assert not problems, report(problems)


def test_decisions_are_stable_across_repeats(server):
    """The same i_ / transform file answered twice gives the same answer."""
    names = [os.path.join(PARSING, n) for n in sorted(I_DECISIONS)] + suite_files(TRANSFORM)
    problems = []
    with requests.Session() as s:
        for path in names:
            first = outcome(*post(s, server, read(path))[:2])
            second = outcome(*post(s, server, read(path))[:2])
            if first != second:
                problems.append(f"{os.path.basename(path)}: {first} then {second}")
    assert not problems, report(problems)
