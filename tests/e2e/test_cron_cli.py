"""`sluice cron next` as an operator runs it before deploying a schedule: the run times in UTC
and local time, one a line, across New York's 2026 daylight-saving days (the rule of
docs/scheduling.md), and exit 2 with the reason on stderr for a bad expression (naming the
field), zone, --from or --count. No server, no configuration."""
import os
import subprocess

import pytest

from conftest import BIN


def cron(*args):
    e = dict(os.environ)
    e.pop("TZDIR", None)
    p = subprocess.run([BIN, "cron", *map(str, args)], capture_output=True, text=True, env=e,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


NY = "America/New_York"


def test_spring_forward_the_gap_time_runs_at_the_end_of_the_gap():
    rc, out, err = cron("next", "30 2 * * *", "--tz", NY, "--from", "2026-03-07T00:00:00Z",
                        "--count", "3")
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "2026-03-07T07:30:00Z  2026-03-07T02:30:00-05:00 America/New_York",
        "2026-03-08T07:00:00Z  2026-03-08T03:00:00-04:00 America/New_York",
        "2026-03-09T06:30:00Z  2026-03-09T02:30:00-04:00 America/New_York",
    ]


def test_fall_back_hourly_runs_in_both_passes_and_a_fixed_hour_once():
    rc, out, _ = cron("next", "0 * * * *", "--tz", NY, "--from", "2026-11-01T04:00:00Z",
                      "--count", "4")
    assert rc == 0
    assert out.splitlines() == [
        "2026-11-01T05:00:00Z  2026-11-01T01:00:00-04:00 America/New_York",
        "2026-11-01T06:00:00Z  2026-11-01T01:00:00-05:00 America/New_York",
        "2026-11-01T07:00:00Z  2026-11-01T02:00:00-05:00 America/New_York",
        "2026-11-01T08:00:00Z  2026-11-01T03:00:00-05:00 America/New_York",
    ]
    rc, out, _ = cron("next", "30 1 * * *", "--from", "2026-10-31T12:00:00Z", "--tz", NY,
                      "--count", "2")
    assert rc == 0
    assert out.splitlines() == [
        "2026-11-01T05:30:00Z  2026-11-01T01:30:00-04:00 America/New_York",
        "2026-11-02T06:30:00Z  2026-11-02T01:30:00-05:00 America/New_York",
    ]


def test_defaults_utc_and_five_runs_and_a_macro():
    rc, out, _ = cron("next", "@daily", "--from", "2026-01-01T00:00:00Z")
    assert rc == 0
    assert out.splitlines() == [
        f"2026-01-0{d}T00:00:00Z  2026-01-0{d}T00:00:00+00:00 UTC" for d in range(2, 7)]


def test_count_up_to_1000():
    rc, out, _ = cron("next", "* * * * *", "--from", "2026-01-01T00:00:00Z", "--count", "1000")
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 1000
    assert lines[-1].startswith("2026-01-01T16:40:00Z  ")


@pytest.mark.parametrize("expr,say", [
    ("0 24 * * *", "cron: field 2 (hour): 24 is out of range 0-23"),
    ("61 * * * *", "field 1 (minute): 61 is out of range 0-59"),
    ("0 0 * FOO *", "field 4 (month): \"FOO\" is not a number or a name"),
    ("0 0 * * 8", "field 5 (day of week): 8 is out of range 0-7"),
    ("0 0 30 2 *", "never fires"),
    ("* * * *", "expected 5 fields"),
    ("@reboot", "unknown macro"),
])
def test_a_bad_expression_exits_2_naming_the_field(expr, say):
    rc, out, err = cron("next", expr, "--tz", NY)
    assert rc == 2
    assert out == ""
    assert say in err, err


@pytest.mark.parametrize("zone,say", [
    ("Mars/Olympus_Mons", "unknown time zone \"Mars/Olympus_Mons\""),
    ("../etc/passwd", "may not be absolute nor contain \"..\""),
    ("/etc/passwd", "may not be absolute"),
])
def test_a_bad_zone_exits_2(zone, say):
    rc, out, err = cron("next", "0 0 * * *", "--tz", zone)
    assert (rc, out) == (2, "")
    assert say in err, err


def test_a_bad_from_exits_2():
    rc, out, err = cron("next", "0 0 * * *", "--from", "yesterday-ish")
    assert (rc, out) == (2, "")
    assert "--from" in err and "RFC 3339" in err, err


@pytest.mark.parametrize("count", ["0", "1001", "-3", "ten", "5x", ""])
def test_a_bad_count_exits_2(count):
    rc, out, err = cron("next", "0 0 * * *", "--count", count)
    assert (rc, out) == (2, "")
    assert "--count must be a number from 1 to 1000" in err, err


@pytest.mark.parametrize("args,say", [
    ((), "usage: sluice cron next"),
    (("next",), "usage: sluice cron next"),
    (("prev", "0 0 * * *"), "usage: sluice cron next"),
    (("next", "0 0 * * *", "extra"), "usage: sluice cron next"),
    (("next", "0 0 * * *", "--bogus"), "unknown option --bogus"),
    (("next", "0 0 * * *", "--tz"), "an option needs a value"),
])
def test_usage_errors_exit_2(args, say):
    rc, out, err = cron(*args)
    assert (rc, out) == (2, "")
    assert say in err, err
