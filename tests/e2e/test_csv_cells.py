"""CSV cells as vendors write them (docs/api.md, "CSV cells"): the null string (an empty cell
is null for every type, csv_null / csv_empty_string keep other conventions), surrounding
whitespace (trimmed for every type but plain strings), header mapping (csv_name, matched
exactly, then without case or surrounding whitespace), numbers with group and decimal
separators, and the schemas refused at load (property names that differ only in case, empty
ranges, two fields matching one header). Stored rows are read through conftest's
server.db()."""
import json
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, Server
from test_batches import errors_json, sql, upload_ok, wait_status


def run_batch(server, dataset, body, threshold="100"):
    bid = upload_ok(server, dataset, body, {"error_threshold_percent": threshold})
    return bid, wait_status(server, bid)


def row_errors(server, bid):
    """(row, code, field, message) of every row error of the batch."""
    return [(e["row_number"], e["error_code"], e["field"], e["error_message"])
            for e in errors_json(server, bid)]


def codes(server, bid):
    return [(r, c, f) for r, c, f, _ in row_errors(server, bid)]


# ---------------------------------------------------------------- the null string (1.9)

CASES = """
  - name: cases
{options}    schema:
      type: object
      required: [case_number, amount]
      properties:
        case_number: {{type: string, pattern: "^CASE-[0-9]{{7}}$"}}
        amount: {{type: number}}
        count: {{type: integer}}
        ok: {{type: boolean}}
        filed: {{type: string, format: date}}
        notes: {{type: string}}
{extra}"""


def cases_yaml(options="", extra=""):
    return CASES.format(options=options, extra=extra)


def test_empty_cell_is_null_for_every_type(make_server):
    """An empty required cell is MISSING_REQUIRED_FIELD whatever its type (a patterned string
    included, which used to be PATTERN_MISMATCH ... got ''); an empty optional cell is
    stored as NULL for every type."""
    server = make_server(datasets_yaml=cases_yaml())
    body = (b"case_number,amount,count,ok,filed,notes\n"
            b",1.5,1,true,2024-01-01,a\n"
            b"CASE-0000002,,2,false,2024-01-02,b\n"
            b'"",2.5,3,true,2024-01-03,c\n'
            b"CASE-0000004,4.5,,,,\n")
    bid, b = run_batch(server, "cases", body)
    assert (b["status"], b["row_count_inserted"], b["row_count_invalid"]) == ("completed", 1, 3)
    errs = row_errors(server, bid)
    assert [(r, c, f) for r, c, f, _ in errs] == [
        (1, "MISSING_REQUIRED_FIELD", "case_number"),
        (2, "MISSING_REQUIRED_FIELD", "amount"),
        (3, "MISSING_REQUIRED_FIELD", "case_number")], errs
    assert sql(server, "SELECT case_number, amount, count, ok, filed, notes FROM ds_cases") == \
        [("CASE-0000004", 4.5, None, None, None, None)]


def test_csv_empty_string_keeps_empty_strings(make_server):
    """csv_empty_string: true (dataset) keeps an empty string cell as "", so the patterned
    field reports PATTERN_MISMATCH; a property's own csv_empty_string overrides the dataset's,
    both ways; non-string fields stay null."""
    extra = "        memo: {type: string, csv_empty_string: false}\n"
    server = make_server(datasets_yaml=cases_yaml("    csv_empty_string: true\n", extra))
    body = (b"case_number,amount,count,notes,memo\n"
            b",1.5,1,x,y\n"
            b"CASE-0000002,2.5,,,\n")
    bid, b = run_batch(server, "cases", body)
    assert (b["row_count_inserted"], b["row_count_invalid"]) == (1, 1), b
    errs = row_errors(server, bid)
    assert [(r, c, f) for r, c, f, _ in errs] == [(1, "PATTERN_MISMATCH", "case_number")]
    assert "got ''" in errs[0][3]
    assert sql(server, "SELECT count, notes, memo FROM ds_cases") == [(None, "", None)]

    extra = "        memo: {type: string, csv_empty_string: true}\n"
    server = make_server(datasets_yaml=cases_yaml("", extra))
    bid, b = run_batch(server, "cases", b"case_number,amount,notes,memo\nCASE-0000003,1,,\n")
    assert b["row_count_inserted"] == 1, b
    assert sql(server, "SELECT notes, memo FROM ds_cases") == [(None, "")]


def test_csv_null_names_the_null_string(make_server):
    """csv_null: NA: a cell equal to it (after trimming, for non-strings) is null for every
    type; an empty cell then is the empty string, and no number."""
    server = make_server(datasets_yaml=cases_yaml("    csv_null: NA\n"))
    body = (b"case_number,amount,count,notes\n"
            b"CASE-0000001,1.5, NA ,NA\n"
            b"CASE-0000002,2.5,,\n"
            b"NA,3.5,3,z\n")
    bid, b = run_batch(server, "cases", body)
    assert (b["row_count_inserted"], b["row_count_invalid"]) == (1, 2), b
    assert codes(server, bid) == [(2, "INVALID_TYPE", "count"),
                                  (3, "MISSING_REQUIRED_FIELD", "case_number")]
    assert sql(server, "SELECT case_number, count, notes FROM ds_cases") == \
        [("CASE-0000001", None, None)]


# ---------------------------------------------------------------- surrounding whitespace

TYPES = """
  - name: typed
    schema:
      type: object
      properties:
        n: {type: integer}
        x: {type: number}
        b: {type: boolean}
        d: {type: string, format: date}
        t: {type: string, format: date-time}
        s: {type: string}
        e: {type: string, enum: [open, closed]}
"""
TRIMMED = TYPES + """        et: {type: string, enum: [open, closed], trim: true}
        st: {type: string, trim: true}
"""


@pytest.mark.parametrize("field, cell, stored", [
    ("n", " 5 ", 5), ("n", "\t-7", -7), ("n", "8 ", 8),
    ("x", " 2.5", 2.5), ("x", "2.5\t", 2.5),
    ("b", " true", 1), ("b", "false ", 0), ("b", " 1 ", 1),
    ("d", " 2024-02-29", "2024-02-29"), ("d", "2024-02-29 ", "2024-02-29"),
    ("t", " 2024-01-01T10:00:00Z ", "2024-01-01T10:00:00Z"),
    ("et", " open ", "open"), ("st", "  padded\t", "padded"),
    ("s", "  kept  ", "  kept  "),
])
def test_surrounding_whitespace_is_trimmed_but_for_strings(make_server, field, cell, stored):
    server = make_server(datasets_yaml=TRIMMED if field in ("et", "st") else TYPES)
    bid, b = run_batch(server, "typed", f'{field}\n"{cell}"\n'.encode())
    assert (b["row_count_inserted"], b["row_count_invalid"]) == (1, 0), \
        (b, row_errors(server, bid))
    assert sql(server, f"SELECT {field} FROM ds_typed") == [(stored,)]


def test_whitespace_in_an_enum_string_is_kept(make_server):
    """A string is kept as written unless its field says trim: true: ' open' is no enum
    value; a cell of spaces only is not empty for a string, but is null for other types."""
    server = make_server(datasets_yaml=TYPES)
    bid, b = run_batch(server, "typed", b'e,n,s\n" open",1,x\nopen,"  ","  "\n')
    assert (b["row_count_inserted"], b["row_count_invalid"]) == (1, 1), b
    errs = row_errors(server, bid)
    assert [(r, c, f) for r, c, f, _ in errs] == [(1, "NOT_IN_ENUM", "e")]
    assert "got ' open'" in errs[0][3]
    assert sql(server, "SELECT e, n, s FROM ds_typed") == [("open", None, "  ")]


# ---------------------------------------------------------------- header mapping

STREETS = """
  - name: streets
    schema:
      type: object
      required: [case_number, on_street]
      properties:
        on_street: {type: string, csv_name: "On Street"}
        case_number: {type: string, csv_name: "Case #"}
        day: {type: string, format: date, csv_name: yyyy-MM-dd}
        amount: {type: number}
"""


def streets_server(make_server):
    return make_server(datasets_yaml=STREETS)


def test_csv_name_maps_headers_that_are_not_identifiers(make_server):
    server = streets_server(make_server)
    body = (b"Case #,On Street,yyyy-MM-dd,amount,Other Thing\n"
            b"C-1,Main St,2024-01-02,3.5,kept\n")
    bid, b = run_batch(server, "streets", body)
    assert (b["status"], b["row_count_inserted"]) == ("completed", 1), (b, row_errors(server, bid))
    rows = sql(server, "SELECT case_number, on_street, day, amount, _extra FROM ds_streets")
    assert rows[0][:4] == ("C-1", "Main St", "2024-01-02", 3.5)
    assert json.loads(rows[0][4]) == {"Other Thing": "kept"}  # undeclared: by its header


def test_headers_match_without_case_or_whitespace_when_not_exact(make_server):
    server = streets_server(make_server)
    body = b" on street ,CASE #,AMOUNT\nElm,C-2,4\n"
    bid, b = run_batch(server, "streets", body)
    assert (b["status"], b["row_count_inserted"]) == ("completed", 1), (b, row_errors(server, bid))
    assert sql(server, "SELECT case_number, on_street, amount FROM ds_streets") == \
        [("C-2", "Elm", 4.0)]


def test_exact_header_wins_over_a_loose_one(make_server):
    """'On Street' names the field exactly; 'ON STREET' then is an undeclared column."""
    server = streets_server(make_server)
    bid, b = run_batch(server, "streets", b"Case #,ON STREET,On Street\nC-3,loose,exact\n")
    assert b["row_count_inserted"] == 1, (b, row_errors(server, bid))
    rows = sql(server, "SELECT on_street, _extra FROM ds_streets")
    assert rows[0][0] == "exact" and "loose" in rows[0][1]


def test_two_loose_headers_for_one_field_fail_at_staging(make_server):
    server = streets_server(make_server)
    bid, b = run_batch(server, "streets", b"Case #,on street,ON STREET\nC-4,a,b\n")
    assert b["status"] == "failed", b
    assert b["rejection_reason"] == \
        "columns 'on street' and 'ON STREET' both match field on_street (header 'On Street')", b
    assert [h["status"] for h in b["history"]][-2:] == ["staging", "failed"]


def test_missing_mapped_column_fails_at_staging(make_server):
    server = streets_server(make_server)
    bid, b = run_batch(server, "streets", b"Case #,amount\nC-5,1\n")
    assert b["status"] == "failed", b
    assert b["rejection_reason"] == "missing required column 'On Street' (field on_street)", b
    assert [h["status"] for h in b["history"]][-2:] == ["staging", "failed"]


def test_dlq_retry_reads_the_record_as_the_batch_did(make_server):
    """A rejected row retried from the DLQ is read with the same header mapping and cell rules
    (csv_name, trimming, group separators) and stored under the field names."""
    narrow = STREETS + '        kind: {type: string, csv_name: "Kind of Thing", enum: [a]}\n' \
        '        total: {type: number, group: ","}\n'
    server = make_server(datasets_yaml=narrow)
    body = (b"Case #,on street,Kind of Thing,total,Other\n"
            b'C-1,Main,a," 1,000.5 ",x\n'
            b'C-2,Elm,b,"2,000",y\n')
    bid, b = run_batch(server, "streets", body)
    assert (b["row_count_inserted"], b["row_count_invalid"]) == (1, 1), b
    assert codes(server, bid) == [(2, "NOT_IN_ENUM", "kind")]
    server.write_config(datasets_yaml=narrow.replace("enum: [a]", "enum: [a, b]"))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "b" not in server.get("/api/v1/datasets/streets").json()["schema"]["properties"][
            "kind"]["enum"]:
        assert time.time() < deadline, "the reload did not apply:\n" + server.logs()
        time.sleep(0.05)
    r = server.post("/api/v1/dlq/retry", json={"dataset": "streets"})
    assert r.status_code == 200 and r.json()["resolved"] == 1, r.text
    rows = sql(server, "SELECT case_number, on_street, kind, total, _extra FROM ds_streets "
                       "ORDER BY case_number")
    assert [r[:4] for r in rows] == [("C-1", "Main", "a", 1000.5), ("C-2", "Elm", "b", 2000.0)]
    assert [json.loads(r[4]) for r in rows] == [{"Other": "x"}, {"Other": "y"}]


# ---------------------------------------------------------------- spreadsheet numbers

NUMBERS = """
  - name: money
    schema:
      type: object
      properties:
        us: {type: number, group: ","}
        eu: {type: number, decimal: ",", group: "."}
        fr: {type: number, decimal: ","}
        qty: {type: integer, group: "."}
"""


def test_group_and_decimal_separators(make_server):
    server = make_server(datasets_yaml=NUMBERS)
    body = (b"us,eu,fr,qty\n"
            b'"1,234.50","1.234,50","3,25",1.234.567\n'
            b'1234.5,"1234,5",-0,-12\n'
            b'"-12,345,678.9e2"," +1.000.000,125 ","1e3",999\n')
    bid, b = run_batch(server, "money", body)
    assert (b["row_count_inserted"], b["row_count_invalid"]) == (3, 0), (b, row_errors(server, bid))
    assert sql(server, "SELECT us, eu, fr, qty FROM ds_money ORDER BY _id") == [
        (1234.5, 1234.5, 3.25, 1234567),
        (1234.5, 1234.5, 0.0, -12),
        (-1234567890.0, 1000000.125, 1000.0, 999)]


@pytest.mark.parametrize("field, cell, message", [
    ("us", "1,23.5", "expected a number written with decimal '.' and group ',' (as "
                     "1,234,567.89), got '1,23.5'"),
    ("us", "1234,567", "got '1234,567'"),
    ("us", ",123", "got ',123'"),
    ("us", "1,234.5,6", "got '1,234.5,6'"),
    ("eu", "1.234.50", "expected a number written with decimal ',' and group '.' (as "
                       "1.234.567,89), got '1.234.50'"),
    ("eu", "1,234.50", "got '1,234.50'"),
    ("fr", "3.25", "expected a number written with decimal ',' (as 1234567,89), got '3.25'"),
    ("qty", "12.34", "expected an integer written with group '.' (as 1.234.567), got '12.34'"),
    ("qty", "1.234,5", "got '1.234,5'"),
])
def test_malformed_grouped_number_is_a_row_error(make_server, field, cell, message):
    server = make_server(datasets_yaml=NUMBERS.replace("properties:", "required: [us, qty]\n"
                                                       "      properties:"))
    header = ["us", "qty"] + ([field] if field not in ("us", "qty") else [])
    line = ",".join(f'"{cell if h == field else "1"}"' for h in header)
    bid, b = run_batch(server, "money", f"{','.join(header)}\n{line}\n".encode())
    assert b["row_count_invalid"] == 1, b
    errs = row_errors(server, bid)
    # one error, the format's: no MISSING_REQUIRED_FIELD or INVALID_TYPE besides it
    assert [(r, c, f) for r, c, f, _ in errs] == [(1, "INVALID_NUMBER_FORMAT", field)], errs
    assert message in errs[0][3], errs


# ---------------------------------------------------------------- refused at load

def start_fails(tmp_path, datasets_yaml):
    """Start `sluice serve` on datasets_yaml; it must exit 2 (a bad configuration) at once.
    Returns its output."""
    s = Server(tempfile.mkdtemp(dir=tmp_path), datasets_yaml=datasets_yaml)
    try:
        p = subprocess.run([BIN, "serve", "--config", s.config_path], capture_output=True,
                           text=True, timeout=15)
    finally:
        s.destroy_store()
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    return p.stderr


def test_names_differing_only_in_case_are_refused_at_start(tmp_path):
    err = start_fails(tmp_path, """
  - name: readings
    schema:
      properties:
        dateTime: {type: string}
        datetime: {type: string}
""")
    assert "properties.datetime: differs from properties.dateTime only in case" in err, err
    assert "(dataset 'readings')" in err, err


@pytest.mark.parametrize("bounds, want", [
    ("type: number, exclusiveMinimum: 6, exclusiveMaximum: 5",
     "properties.v: no number satisfies exclusiveMinimum 6 and exclusiveMaximum 5"),
    ("type: number, minimum: 5, exclusiveMaximum: 5",
     "properties.v: no number satisfies minimum 5 and exclusiveMaximum 5"),
    ("type: integer, exclusiveMinimum: 5, exclusiveMaximum: 6",
     "properties.v: no integer satisfies exclusiveMinimum 5 and exclusiveMaximum 6"),
])
def test_empty_ranges_are_refused_at_start(tmp_path, bounds, want):
    err = start_fails(tmp_path, f"""
  - name: gauges
    schema:
      properties:
        v: {{{bounds}}}
""")
    assert want in err and "(dataset 'gauges')" in err, err


@pytest.mark.parametrize("props, want", [
    ('a: {type: string, csv_name: "Col A"}\n        b: {type: string, csv_name: " col a"}',
     "properties.b: its CSV header ' col a' and the CSV header 'Col A' of properties.a match "
     "the same column"),
    ('a: {type: string, csv_name: b}\n        b: {type: string}',
     "properties.b: its CSV header 'b' and the CSV header 'b' of properties.a"),
    ('a: {type: integer, decimal: ","}', "properties.a: 'decimal' does not apply to type integer"),
    ('a: {type: number, decimal: ",", group: ","}', "'group' and 'decimal' are both ','"),
    ('a: {type: integer, trim: true}', "properties.a: 'trim' does not apply to type integer"),
])
def test_bad_csv_keywords_are_refused_at_start(tmp_path, props, want):
    err = start_fails(tmp_path, f"""
  - name: mapped
    schema:
      properties:
        {props}
""")
    assert want in err, err


def test_reload_refuses_names_differing_only_in_case(make_server):
    server = make_server(datasets_yaml=cases_yaml())
    server.write_config(datasets_yaml=cases_yaml(extra="        Notes: {type: string}\n"))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "config reload refused" not in server.logs():
        assert time.time() < deadline, "no reload outcome in the log:\n" + server.logs()
        time.sleep(0.05)
    assert "properties.Notes: differs from properties.notes only in case" in server.logs()
    assert server.get("/healthz").status_code == 200
    props = server.get("/api/v1/datasets/cases").json()["schema"]["properties"]
    assert "Notes" not in props and "notes" in props
