"""`sluice job ...` against a running server (issue 16, section 4): list and show, run --wait
(exit 0 when the run succeeded, 1 with its error when it failed), history with its filters,
pause and resume, cancel of a running run, a run refused while one is running (409), an
idempotent retry, unknown jobs and runs, usage errors caught before anything is sent, and the
roles (viewer reads, operator acts).

The jobs never fire on their own (cron "0 0 1 1 *"): every run here is a manual one."""
import json
import os
import re
import subprocess

from conftest import BIN, wait_for

NEVER = '"0 0 1 1 *"'
JOBS = f"""
scheduler: {{lease_s: 3}}
jobs:
  - name: slow
    kind: noop
    cron: {NEVER}
    timezone: Europe/Berlin
    args: {{sleep: 2s}}
  - name: broken
    kind: noop
    cron: {NEVER}
    args: {{fail: true}}
  - name: long
    kind: noop
    cron: {NEVER}
    args: {{sleep: 60s}}
"""


def job(server, *args, token=None, timeout=90):
    """`sluice job ARGS` against server (SLUICE_URL): (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SLUICE_CONFIG", "SLUICE_TOKEN")}
    env["SLUICE_URL"] = server.url
    if token:
        env["SLUICE_TOKEN"] = token
    p = subprocess.run([BIN, "job", *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_id(out):
    """The id in `run N of job NAME queued (trigger manual)`."""
    m = re.match(r"run (\d+) of job \w+ \w+ \(trigger manual\)\n$", out)
    assert m, out
    return int(m.group(1))


def run_state(server, rid):
    r = server.get(f"/api/v1/runs/{rid}")
    assert r.status_code == 200, r.text
    return r.json()["state"]


def table(out):
    """A table's rows (header first) as lists of cells (two spaces or more apart)."""
    return [re.split(r"  +", line) for line in out.splitlines() if line]


def test_list_and_show(make_server):
    server = make_server(extra_yaml=JOBS)
    rc, out, err = job(server, "list")
    assert rc == 0, err
    rows = table(out)
    assert rows[0] == ["NAME", "KIND", "SCHEDULE", "STATUS", "NEXT RUN", "LAST RUN"]
    by_name = {r[0]: r for r in rows[1:]}
    assert sorted(by_name) == ["broken", "long", "slow"]
    assert by_name["slow"][1:4] == ["noop", "0 0 1 1 * (Europe/Berlin)", "active"]
    assert by_name["slow"][4].endswith("-01-01T00:00:00+01:00"), by_name["slow"]
    assert by_name["slow"][5] == "-"  # never ran
    assert by_name["broken"][2] == "0 0 1 1 * (UTC)"

    rc, out, err = job(server, "list", "--json")
    assert rc == 0, err
    assert [j["name"] for j in json.loads(out)["jobs"]] == ["slow", "broken", "long"]

    rc, out, err = job(server, "show", "slow")
    assert rc == 0, err
    assert "schedule:             0 0 1 1 * (Europe/Berlin)" in out
    assert "status:               active" in out
    assert "last run:             none" in out
    nexts = out.split("next runs:\n")[1].splitlines()
    assert len(nexts) == 5 and all(n.endswith("-01-01T00:00:00+01:00") for n in nexts), out
    rc, out, err = job(server, "show", "slow", "--json")
    assert rc == 0, err
    ans = json.loads(out)
    assert ans["name"] == "slow" and ans["timezone"] == "Europe/Berlin"
    assert len(ans["next_runs"]) == 5


def test_run_wait_exit_codes_and_history(make_server):
    server = make_server(extra_yaml=JOBS)
    rc, out, err = job(server, "run", "slow", "--wait")
    assert rc == 0, (out, err)
    lines = out.splitlines()
    m = re.match(r"run (\d+) (queued|running)$", lines[0])
    assert m, out
    rid = int(m.group(1))
    assert re.match(rf"run {rid} succeeded in \d\.\ds$", lines[-1]), out
    assert len(set(lines)) == len(lines)  # a line per state change, each once
    assert err == ""

    rc, out, err = job(server, "run", "broken", "--wait")
    assert rc == 1, (out, err)
    assert re.search(r"run \d+ failed in \d+ms$", out), out
    assert "failed on purpose (args.fail)" in err, err
    assert err.count("failed on purpose") == 1  # said once
    rc, out, err = job(server, "run", "broken", "--wait", "--json")
    assert rc == 1, (out, err)
    final = json.loads(out)
    assert final["state"] == "failed" and final["error"] == "failed on purpose (args.fail)"

    rc, out, err = job(server, "history", "slow")
    assert rc == 0, err
    rows = table(out)
    assert rows[0] == ["RUN", "TRIGGER", "STATE", "SCHEDULED", "DURATION", "ERROR / REASON"]
    assert rows[1][:3] == [str(rid), "manual", "succeeded"], out
    rc, out, err = job(server, "history", "broken", "--state", "failed", "--limit", "1")
    assert rc == 0, err
    rows = table(out)  # the header, one run, the line for the older ones
    assert len(rows) == 3 and rows[1][2] == "failed", out
    assert rows[1][5] == "failed on purpose (args.fail)", out
    m = re.search(r"^older runs: sluice job history broken --before (\d+)$", out, re.M)
    assert m, out
    rc, out, err = job(server, "history", "broken", "--before", m.group(1), "--json")
    assert rc == 0, err
    ans = json.loads(out)
    assert len(ans["runs"]) == 1 and ans["next_before"] is None
    rc, out, err = job(server, "history", "slow", "--state", "failed")
    assert rc == 0 and out == "no runs of job slow match\n", (out, err)

    # the list and show now say how the last runs went
    rc, out, err = job(server, "list")
    by_name = {r[0]: r for r in table(out)[1:]}
    assert by_name["slow"][5] == "succeeded" and by_name["broken"][5] == "failed (2 in a row)"
    rc, out, err = job(server, "show", "broken")
    assert "last success:         never" in out and "failed on purpose (args.fail)" in out, out


def test_pause_and_resume(make_server):
    server = make_server(extra_yaml=JOBS)
    rc, out, err = job(server, "pause", "slow")
    assert rc == 0, err
    assert out.startswith("job slow paused (paused; next run "), out
    rc, out, err = job(server, "show", "slow")
    assert "status:               paused" in out, out
    assert json.loads(job(server, "show", "slow", "--json")[1])["paused"] is True
    assert {r[0]: r[3] for r in table(job(server, "list")[1])[1:]}["slow"] == "paused"
    rc, out, err = job(server, "resume", "slow", "--json")
    assert rc == 0, err
    assert json.loads(out)["paused"] is False
    rc, out, err = job(server, "show", "slow")
    assert "status:               active" in out, out


def test_cancel_a_running_run_and_overlap(make_server):
    server = make_server(extra_yaml=JOBS)
    rc, out, err = job(server, "run", "long")
    assert rc == 0, err
    rid = run_id(out)
    wait_for(lambda: run_state(server, rid) == "running", timeout=20, what="the run to start")

    # another run while this one runs: refused (overlap: skip), the run in the way named
    rc, out, err = job(server, "run", "long")
    assert rc == 1 and out == "", (out, err)
    assert f"its run {rid} is running" in err and f"sluice job cancel {rid}" in err, err
    rc, out, err = job(server, "run", "long", "--json")
    assert rc == 1
    e = json.loads(out)["error"]
    assert e["code"] == "CONFLICT" and e["run_id"] == rid

    rc, out, err = job(server, "cancel", rid)
    assert rc == 0, err
    assert out in (f"run {rid} canceled\n",
                   f"run {rid}: cancel requested; it is running and stops at its runner's next "
                   "check\n"), out
    wait_for(lambda: run_state(server, rid) == "canceled", timeout=20, what="the run canceled")
    rc, out, err = job(server, "history", "long")
    assert table(out)[1][:3] == [str(rid), "manual", "canceled"], out
    # once it has ended, a cancel is a conflict
    rc, out, err = job(server, "cancel", rid)
    assert rc == 1 and f"run {rid} has ended (canceled)" in err and "409" in err, (out, err)


def test_idempotency_key_answers_with_the_same_run(make_server):
    server = make_server(extra_yaml=JOBS)
    rc, out, err = job(server, "run", "long", "--idempotency-key", "deploy-42")
    assert rc == 0, err
    first = run_id(out)
    rc, out, err = job(server, "run", "long", "--idempotency-key", "deploy-42")
    assert rc == 0, (out, err)
    assert run_id(out) == first
    assert job(server, "cancel", first)[0] == 0


def test_unknown_names_and_usage_errors(make_server):
    server = make_server(extra_yaml=JOBS)
    for args in (("show", "nope"), ("run", "nope"), ("run", "nope", "--wait"),
                 ("history", "nope"), ("pause", "nope"), ("resume", "nope")):
        rc, out, err = job(server, *args)
        assert rc == 1, (args, out, err)
        assert out == "" and "no job 'nope'" in err and "404" in err, (args, err)
        assert err.count("\n") == 1, err  # one line
    rc, out, err = job(server, "cancel", 99999)
    assert rc == 1 and "no run 99999" in err, err
    rc, out, err = job(server, "show", "nope", "--json")
    assert rc == 1 and json.loads(out)["error"]["code"] == "NOT_FOUND"

    for args in ((), ("frobnicate",), ("list", "extra"), ("show",), ("run",),
                 ("show", "slow", "--wait"), ("list", "--limit", "3"), ("cancel", "x"),
                 ("cancel", "0"), ("history", "slow", "--limit", "0"),
                 ("history", "slow", "--before", "abc"), ("run", "slow", "--idempotency-key", ""),
                 ("run", "slow", "--bogus")):
        rc, out, err = job(server, *args)
        assert rc == 2, (args, out, err)
        assert out == "", (args, out)
    # nothing was sent: no run of slow
    assert server.get("/api/v1/jobs/slow/runs").json()["runs"] == []

    # no server there: a message naming the URL, exit 1
    p = subprocess.run([BIN, "job", "list", "--url", "http://127.0.0.1:9"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "127.0.0.1:9" in p.stderr, p.stderr


def test_roles_viewer_reads_operator_acts(make_server):
    server = make_server(extra_yaml=JOBS + "auth: {jwt: {leeway_s: 60}}\n")
    keys = {}
    for role in ("viewer", "operator"):
        p = subprocess.run([BIN, "keys", "create", "--config", server.config_path, "--name", role,
                            "--role", role], capture_output=True, text=True, timeout=30,
                           env={k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")})
        assert p.returncode == 0, p.stderr
        keys[role] = json.loads(p.stdout)["key"]
    rc, out, err = job(server, "list")
    assert rc == 1 and "SLUICE_TOKEN" in err, err
    rc, out, err = job(server, "list", token=keys["viewer"])
    assert rc == 0, err
    rc, out, err = job(server, "pause", "slow", token=keys["viewer"])
    assert rc == 1 and "403" in err and err.count("\n") == 1, err
    rc, out, err = job(server, "pause", "slow", token=keys["operator"])
    assert rc == 0, err
