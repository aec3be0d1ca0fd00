#!/usr/bin/env python3
"""csv_gen.py - the CSV file of bench/csv_run.sh, generated deterministically.

    python3 bench/csv_gen.py OUT.csv [--rows 1000000] [--invalid-pct 2] [--seed 20261123]

Writes a header and ROWS data rows (~100 bytes each, LF line ends) for the
`bench` dataset that csv_run.sh declares (the same schema is printed by
--schema):

    case_number  string, pattern ^CASE-[0-9]{7}$, required (unique in the file)
    amount       number, minimum 0, required
    filed_date   string, format date, required
    status       string, enum [open, closed, pending]
    notes        string, maxLength 64 (some quoted, with commas, doubled
                 quotes and non-ASCII letters; some empty)
    claim_count  integer, minimum 0
    urgent       boolean (true/false)
    updated_at   string, format date-time

Exactly round(ROWS * INVALID_PCT / 100) rows are invalid (2% = 20,000 of
1,000,000), at seeded random positions, cycling through 13 kinds: a case
number off the pattern, a negative amount, an impossible date, a status
outside the enum, notes over maxLength, a non-integer claim_count, a
non-boolean urgent, a bad date-time, a missing required value (empty
amount), an extra field, a missing field, a stray quote (MALFORMED_CSV) and
invalid UTF-8. Every case number stays unique, invalid rows included, so the
file also loads into a dataset keyed on case_number without duplicates.
The same seed and arguments always give the same bytes (prints the SHA-256).
--valid-only writes the same file without its invalid rows (for a peer such as
PostgreSQL's COPY, which stops at the first bad row).
"""
import argparse
import datetime
import hashlib
import random
import sys

SEED = 20261123
HEADER = "case_number,amount,filed_date,status,notes,claim_count,urgent,updated_at"
SCHEMA_YAML = """\
    schema:
      type: object
      required: [case_number, amount, filed_date]
      additionalProperties: false
      properties:
        case_number: {type: string, pattern: "^CASE-[0-9]{7}$"}
        amount:      {type: number, minimum: 0}
        filed_date:  {type: string, format: date}
        status:      {type: string, enum: [open, closed, pending]}
        notes:       {type: string, maxLength: 64}
        claim_count: {type: integer, minimum: 0}
        urgent:      {type: boolean}
        updated_at:  {type: string, format: date-time}"""
# The same columns for sqlite3's .import (bench/csv_run.sh's peer).
SQL_COLUMNS = ("case_number TEXT, amount REAL, filed_date TEXT, status TEXT, notes TEXT,"
               " claim_count INTEGER, urgent INTEGER, updated_at TEXT")

WORDS = ("appeal hearing filed motion granted denied pending review court order "
         "judgment claim damages costs evidence witness counsel settlement stay "
         "remand dismissed costs interim relief").split()
ACCENTED = ["Müller", "Søren", "Zoë", "José", "Łódź", "Ærø", "Ångström"]
KINDS = ["case_number", "amount_negative", "date", "status", "notes_long", "claim_count",
         "urgent", "updated_at", "missing_required", "extra_field", "missing_field",
         "stray_quote", "invalid_utf8"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--invalid-pct", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--valid-only", action="store_true",
                    help="leave the invalid rows out (the same valid rows, for a peer that cannot skip them)")
    ap.add_argument("--schema", action="store_true", help="print the dataset's schema (YAML) and exit")
    ap.add_argument("--sql-columns", action="store_true", help="print the SQL column list and exit")
    a = ap.parse_args()
    if a.schema:
        print(SCHEMA_YAML)
        return
    if a.sql_columns:
        print(SQL_COLUMNS)
        return
    if not a.out:
        ap.error("OUT is required")
    if a.rows > 10_000_000:
        ap.error("at most 10,000,000 rows (7-digit case numbers)")

    rng = random.Random(a.seed)
    n_bad = round(a.rows * a.invalid_pct / 100)
    bad = set(rng.sample(range(a.rows), n_bad))
    bad_kind = {}
    for k, i in enumerate(sorted(bad)):
        bad_kind[i] = KINDS[k % len(KINDS)]

    d0 = datetime.date(2000, 1, 1)
    dates = [(d0 + datetime.timedelta(days=k)).isoformat() for k in range(9131)]
    statuses = ("open", "closed", "pending")

    def notes():
        r = rng.random()
        if r < 0.05:
            return ""
        words = rng.sample(WORDS, rng.randint(2, 6))
        if r < 0.15:  # quoted: a comma inside
            return '"' + ", ".join(words) + '"'
        if r < 0.18:  # quoted: doubled quotes inside
            return '"' + " ".join(words[:2]) + ' ""' + words[-1] + '"""'
        if r < 0.23:  # non-ASCII letters (maxLength counts code points)
            words[0] = rng.choice(ACCENTED)
        return " ".join(words)

    h = hashlib.sha256()
    counts = {k: 0 for k in KINDS}
    nbytes = 0
    with open(a.out, "wb") as f:
        out = [(HEADER + "\n").encode()]
        for i in range(a.rows):
            case = "CASE-%07d" % ((i * 7777777 + 1234567) % 10_000_000)  # a bijection: unique
            fields = [case, "%.2f" % (rng.randint(0, 5_000_000) / 100), rng.choice(dates),
                      rng.choice(statuses), notes(), str(rng.randint(0, 400)),
                      rng.choice(("true", "false")),
                      "%sT%02d:%02d:%02dZ" % (rng.choice(dates), rng.randint(0, 23),
                                              rng.randint(0, 59), rng.randint(0, 59))]
            kind = bad_kind.get(i)
            raw = None
            if kind:
                counts[kind] += 1
                if kind == "case_number":
                    fields[0] = "case-" + case[5:]  # lower case: off the pattern, still unique
                elif kind == "amount_negative":
                    fields[1] = "-" + fields[1] if fields[1] != "0.00" else "-1.00"
                elif kind == "date":
                    fields[2] = "%s-02-30" % fields[2][:4]
                elif kind == "status":
                    fields[3] = "archived"
                elif kind == "notes_long":
                    fields[4] = "x" * 65
                elif kind == "claim_count":
                    fields[5] = rng.choice(("12.5", "many", "-3"))
                elif kind == "urgent":
                    fields[6] = "maybe"
                elif kind == "updated_at":
                    fields[7] = fields[7][:5] + "13" + fields[7][7:]  # month 13
                elif kind == "missing_required":
                    fields[1] = ""  # empty: absent, and amount is required
                elif kind == "extra_field":
                    fields.append("surplus")
                elif kind == "missing_field":
                    fields.pop()
                elif kind == "stray_quote":
                    fields[4] = 'the "quoted word'  # a quote inside an unquoted field
                elif kind == "invalid_utf8":
                    raw = (",".join(fields[:4]) + ",").encode() + b"bad \xff\xfe bytes" + \
                        ("," + ",".join(fields[5:]) + "\n").encode()
            if not (kind and a.valid_only):
                out.append(raw if raw is not None else (",".join(fields) + "\n").encode())
            if len(out) >= 10000:
                nbytes += flush(f, h, out)
        nbytes += flush(f, h, out)
    print("csv_gen.py: wrote %s: %d rows + header, %d bytes (%.1f bytes a row), %d invalid (%s),"
          " seed %d, sha256 %s" % (a.out, a.rows, nbytes, nbytes / max(a.rows, 1), n_bad,
                                   ", ".join("%s %d" % kv for kv in counts.items()), a.seed,
                                   h.hexdigest()), file=sys.stderr)


def flush(f, h, out):
    data = b"".join(out)
    f.write(data)
    h.update(data)
    out.clear()
    return len(data)


if __name__ == "__main__":
    main()
