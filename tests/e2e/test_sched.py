"""The scheduler (issue 16): runs on time, catch-up after downtime, a cron edit that does not
back-fill, overlap, retries, a node lost mid-run, history pruning, triggers (202, idempotent,
409, the seeds' path, the next time unmoved), pause and cancel, /health/scheduler, metrics,
and bad job configurations refused at load.

Time travel: the server runs under Debian's libfaketime (LD_PRELOAD, FAKETIME="@..." starts its
wall clock at that instant, then it advances in real time; the monotonic clock is not faked),
so three hours of downtime are a restart with a clock three hours later, never a sleep."""
import datetime
import os
import subprocess

import pytest
import requests

from conftest import BIN, SANITIZED, wait_for

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

# A job that never fires on its own: for triggers.
NEVER = '"0 0 1 1 *"'


def faketime_env(at, speed=None):
    """The environment that starts the server's wall clock at `at` (a datetime in UTC); with
    speed, its clocks (the monotonic one too, and its sleeps) run that many times faster."""
    if not os.path.exists(FAKETIME_LIB):
        pytest.fail(f"{FAKETIME_LIB} is missing: apt-get install -y faketime")
    env = {"LD_PRELOAD": FAKETIME_LIB,
           "FAKETIME": "@" + at.strftime("%Y-%m-%d %H:%M:%S") + (f" x{speed}" if speed else ""),
           "TZ": "UTC"}
    if not speed:
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    else:  # libpq counts its connect timeout on the faked clock: 10 real seconds
        env["PGCONNECT_TIMEOUT"] = str(10 * speed)
    if SANITIZED:  # libfaketime comes before the ASan runtime in the preload order
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    return env


def utc(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc)


def ms(s):
    """RFC 3339 (naive = UTC) -> epoch milliseconds."""
    return int(utc(s).timestamp() * 1000)


def jobs_yaml(*jobs):
    return "\njobs:\n" + "".join(jobs)


def job(name, cron, kind="noop", extra="", args=""):
    y = f"  - name: {name}\n    cron: {cron}\n    kind: {kind}\n"
    if extra:
        y += "".join(f"    {line}\n" for line in extra.strip().splitlines())
    if args:
        y += f"    args: {args}\n"
    return y


def runs(server, name):
    r = server.get(f"/api/v1/jobs/{name}/runs?limit=200")
    assert r.status_code == 200, r.text
    return list(reversed(r.json()["runs"]))  # oldest first


def ended(run):
    return run["state"] in ("succeeded", "failed", "canceled", "skipped")


def wait_run(server, run_id, timeout=30):
    return wait_for(lambda: (lambda r: r if ended(r) else None)(server.get(f"/api/v1/runs/{run_id}").json()),
                    timeout=timeout, what=f"run {run_id} to end")


def wait_state_row(server, name):
    """Until the scheduler has recorded the job's state (it has seen the job)."""
    def seen():
        with server.db() as db:
            return db.query("SELECT last_due_ms FROM job_state WHERE job = ?", (name,))
    return wait_for(seen, timeout=20, what=f"job_state of {name}")[0][0]


def test_a_job_runs_at_its_time(make_server):
    # the clock starts 3 s before 10:01:00; an every-minute job runs once, at 10:01:00
    s = make_server(extra_yaml=jobs_yaml(job("tick", '"* * * * *"')),
                    env=faketime_env(utc("2026-03-10T10:00:57")))
    got = wait_for(lambda: [r for r in runs(s, "tick") if ended(r)], timeout=15, what="a run")
    assert len(got) == 1
    r = got[0]
    assert r["trigger"] == "schedule" and r["state"] == "succeeded"
    assert r["scheduled_at"] == "2026-03-10T10:01:00.000Z"
    assert ms(r["started_at"][:-1]) - ms("2026-03-10T10:01:00") < 1000  # within 1 s of its time
    job_ = s.get("/api/v1/jobs/tick").json()
    assert job_["last_run"]["id"] == r["id"] and job_["last_success_at"]
    assert job_["next_runs"][0]["utc"] == "2026-03-10T10:02:00.000Z"


@pytest.mark.parametrize("policy,extra,expected", [
    ("none", "", []),
    ("latest", "", ["13:00"]),
    ("all", "", ["11:00", "12:00", "13:00"]),
    ("all", "max_catchup_runs: 2", ["12:00", "13:00"]),
    ("all", "catchup_window: 90m", ["12:00", "13:00"]),
])
def test_catchup_after_three_hours_down(make_server, policy, extra, expected):
    yaml = jobs_yaml(job("hourly", '"0 * * * *"', extra=f"catchup: {policy}\n{extra}"))
    s = make_server(extra_yaml=yaml, env=faketime_env(utc("2026-03-10T10:00:30")))
    wait_state_row(s, "hourly")
    s.stop()
    # three hours later: 11:00, 12:00 and 13:00 were missed (13:00 is more than the grace, 1 m, ago)
    s.env.update(faketime_env(utc("2026-03-10T13:05:00")))
    s.start()
    if expected:
        wait_for(lambda: len([r for r in runs(s, "hourly") if ended(r)]) >= len(expected),
                 timeout=20, what="the catch-up runs")
    else:
        # the scheduler has dealt with the missed times: last_due moved to 13:00
        wait_for(lambda: wait_state_row(s, "hourly") == ms("2026-03-10T13:00:00"), timeout=20,
                 what="last_due at 13:00")
    got = runs(s, "hourly")
    assert [r["scheduled_at"][11:16] for r in got] == expected
    assert all(r["trigger"] == "catchup" and r["state"] == "succeeded" for r in got)
    assert any(l.get("msg") == "scheduled times were missed" and l.get("missed") == 3
               for l in s.log_lines())


def test_a_cron_edit_does_not_backfill(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("hourly", '"0 * * * *"', extra="catchup: all")),
                    env=faketime_env(utc("2026-03-10T10:00:30")))
    wait_state_row(s, "hourly")
    s.stop()
    s.write_config(jobs_yaml(job("hourly", '"30 * * * *"', extra="catchup: all")))
    s.env.update(faketime_env(utc("2026-03-10T13:05:00")))
    s.start()
    wait_for(lambda: wait_state_row(s, "hourly") >= ms("2026-03-10T13:05:00"), timeout=20,
             what="the new expression to start from now")
    assert runs(s, "hourly") == []
    assert s.get("/api/v1/jobs/hourly").json()["next_runs"][0]["utc"] == "2026-03-10T13:30:00.000Z"
    assert any(l.get("msg", "").startswith("schedule changed") for l in s.log_lines())


def test_trigger_is_idempotent_conflicts_and_keeps_the_schedule(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("slow", NEVER, args="{sleep: 2s}")))
    before = s.get("/api/v1/jobs/slow").json()["next_runs"]
    r = s.post("/api/v1/jobs/slow/trigger", headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 202, r.text
    run = r.json()["run"]
    assert r.headers["Location"] == f"/api/v1/runs/{run['id']}"
    assert run["trigger"] == "manual" and run["state"] in ("queued", "running")
    again = s.post("/api/v1/jobs/slow/trigger", headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 202 and again.json()["run"]["id"] == run["id"]
    other = s.post("/api/v1/jobs/slow/trigger")
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "CONFLICT"
    assert other.json()["error"]["run_id"] == run["id"]
    seeds = s.post("/api/scheduler/trigger/slow")  # the path of the services sluice replaces
    assert seeds.status_code == 409
    assert wait_run(s, run["id"])["state"] == "succeeded"
    # once it has ended, the same key still names the same run; a new request runs again
    assert s.post("/api/v1/jobs/slow/trigger", headers={"Idempotency-Key": "k-1"}).json()["run"]["id"] == run["id"]
    r2 = s.post("/api/scheduler/trigger/slow")
    assert r2.status_code == 202 and r2.json()["run"]["id"] != run["id"]
    wait_run(s, r2.json()["run"]["id"])
    assert s.get("/api/v1/jobs/slow").json()["next_runs"] == before
    assert s.post("/api/v1/jobs/nope/trigger").status_code == 404


def test_overlap_skip_records_the_skipped_time(make_server):
    # a manual run at 10:00:57 takes 6 s; the scheduled run of 10:01:00 is skipped, with its id
    s = make_server(extra_yaml=jobs_yaml(job("busy", '"* * * * *"', args="{sleep: 6s}")),
                    env=faketime_env(utc("2026-03-10T10:00:57")))
    first = s.post("/api/v1/jobs/busy/trigger").json()["run"]
    wait_for(lambda: any(r["state"] == "skipped" for r in runs(s, "busy")), timeout=15,
             what="the skipped run")
    skipped = [r for r in runs(s, "busy") if r["state"] == "skipped"][0]
    assert skipped["scheduled_at"] == "2026-03-10T10:01:00.000Z"
    assert skipped["reason"] == f"overlap: run {first['id']} is running"


def test_overlap_queue_runs_one_after_the_other(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("q", NEVER, extra="overlap: queue", args="{sleep: 1s}")))
    ids = [s.post("/api/v1/jobs/q/trigger").json()["run"]["id"] for _ in range(3)]
    done = [wait_run(s, i) for i in ids]
    assert [d["state"] for d in done] == ["succeeded"] * 3
    for a, b in zip(done, done[1:]):  # never two at once
        assert ms(b["started_at"][:-1]) >= ms(a["ended_at"][:-1])


def test_a_failed_run_is_retried_with_backoff(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("bad", NEVER, extra="retries: 2\nretry_backoff: 1s",
                                             args="{fail: true}")))
    first = s.post("/api/v1/jobs/bad/trigger").json()["run"]
    wait_for(lambda: len([r for r in runs(s, "bad") if ended(r)]) == 3, timeout=20,
             what="three attempts")
    got = runs(s, "bad")
    assert [(r["attempt"], r["trigger"], r["state"]) for r in got] == [
        (1, "manual", "failed"), (2, "retry", "failed"), (3, "retry", "failed")]
    assert all(r["scheduled_at"] == first["scheduled_at"] for r in got)
    assert got[0]["error"] == "failed on purpose (args.fail)"
    # the second wait is twice the first
    assert ms(got[1]["started_at"][:-1]) - ms(got[0]["ended_at"][:-1]) >= 1000
    assert ms(got[2]["started_at"][:-1]) - ms(got[1]["ended_at"][:-1]) >= 2000
    assert s.get("/api/v1/jobs/bad").json()["consecutive_failures"] == 3
    m = s.get("/metrics").text
    assert 'sluice_job_runs_total{job="bad",trigger="retry",state="failed"} 2' in m
    assert 'sluice_job_runs_total{job="bad",trigger="manual",state="failed"} 1' in m


def test_a_run_whose_node_died_fails_as_node_lost_and_is_retried(make_server):
    yaml = "\nscheduler: {lease_s: 3}\n" + jobs_yaml(
        job("long", NEVER, extra="retries: 1\nretry_backoff: 1s", args="{sleep: 4s}"))
    s = make_server(extra_yaml=yaml)
    run = s.post("/api/v1/jobs/long/trigger").json()["run"]
    wait_for(lambda: s.get(f"/api/v1/runs/{run['id']}").json()["state"] == "running", timeout=10,
             what="the run to start")
    s.kill9()
    s.start()
    lost = wait_run(s, run["id"], timeout=30)
    assert lost["state"] == "failed" and lost["reason"] == "node lost", lost
    retry = wait_for(lambda: [r for r in runs(s, "long") if r["attempt"] == 2 and ended(r)],
                     timeout=30, what="the retry")[0]
    assert retry["trigger"] == "retry" and retry["state"] == "succeeded"


def test_cancel_a_running_run(make_server):
    s = make_server(extra_yaml="\nscheduler: {lease_s: 3}\n" +
                    jobs_yaml(job("long", NEVER, args="{sleep: 30s}")))
    run = s.post("/api/v1/jobs/long/trigger").json()["run"]
    wait_for(lambda: s.get(f"/api/v1/runs/{run['id']}").json()["state"] == "running", timeout=10,
             what="the run to start")
    c = s.post(f"/api/v1/runs/{run['id']}/cancel")
    assert c.status_code == 200 and c.json()["cancel_requested"] is True
    done = wait_run(s, run["id"], timeout=10)  # the cancel wakes the scheduler: it renews at once
    assert done["state"] == "canceled" and done["error"] == "canceled"
    again = s.post(f"/api/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
    assert s.post("/api/v1/runs/999999/cancel").status_code == 404


def test_pause_stops_the_schedule_and_resume_starts_it(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("tick", '"* * * * *"', extra="catchup: none")),
                    env=faketime_env(utc("2026-03-10T10:00:56")))
    p = s.post("/api/v1/jobs/tick/pause")
    assert p.status_code == 200 and p.json()["paused"] is True
    wait_for(lambda: any(l.get("msg") == "job paused" for l in s.log_lines()), timeout=10,
             what="the scheduler to see the pause")
    # 10:01:00 passes while paused: no run
    wait_for(lambda: requests.get(s.url + "/health/scheduler").json()["last_tick_at"] >= "2026-03-10T10:01:01",
             timeout=20, what="a tick after 10:01")
    assert runs(s, "tick") == []
    r = s.post("/api/v1/jobs/tick/resume")
    assert r.status_code == 200 and r.json()["paused"] is False


def test_history_is_pruned_by_keep_runs_and_keep_days(make_server):
    yaml = jobs_yaml(job("often", NEVER, extra="overlap: queue\nkeep_runs: 5\nkeep_days: 1"))
    s = make_server(extra_yaml=yaml, env=faketime_env(utc("2026-03-10T10:00:00")))
    ids = [s.post("/api/v1/jobs/often/trigger").json()["run"]["id"] for _ in range(12)]
    wait_run(s, ids[-1])
    wait_for(lambda: all(ended(r) for r in runs(s, "often")), timeout=20, what="all runs")
    assert len(runs(s, "often")) >= 6  # the first prune came after the first run: nothing old yet
    s.stop()
    # two days later the older runs are past keep_days: the next run's end prunes to keep_runs
    s.env.update(faketime_env(utc("2026-03-12T10:00:00")))
    s.start()
    last = s.post("/api/v1/jobs/often/trigger").json()["run"]["id"]
    wait_run(s, last)
    wait_for(lambda: len(runs(s, "often")) == 5, timeout=20, what="the history pruned to 5")
    assert runs(s, "often")[-1]["id"] == last


def test_health_scheduler_and_metrics(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("a", NEVER)))
    run = s.post("/api/v1/jobs/a/trigger").json()["run"]
    wait_run(s, run["id"])
    h = s.get("/health/scheduler")
    assert h.status_code == 200
    j = h.json()
    assert j["status"] == "ok" and j["running"] is True and j["leader"] is True
    assert [r["id"] for r in j["job_history"]["a"]] == [run["id"]]
    assert "scheduler" in s.get("/health/detailed").json()["node"]["roles"]
    m = s.get("/metrics").text
    assert "sluice_scheduler_leader 1" in m
    assert 'sluice_job_runs_total{job="a",trigger="manual",state="succeeded"} 1' in m
    assert 'sluice_job_last_success_timestamp_seconds{job="a"}' in m
    assert 'sluice_job_run_duration_seconds_count{job="a"} 1' in m


def test_scheduler_disabled_starts_no_run(make_server):
    s = make_server(extra_yaml="\nscheduler: {enabled: false}\n" + jobs_yaml(job("a", NEVER)))
    assert s.get("/health/scheduler").json()["status"] == "disabled"
    run = s.post("/api/v1/jobs/a/trigger").json()["run"]
    wait_for(lambda: s.get("/health/scheduler").json()["last_tick_at"], timeout=15, what="a tick")
    assert s.get(f"/api/v1/runs/{run['id']}").json()["state"] == "queued"


@pytest.mark.parametrize("bad,message", [
    (job("j", '"0 24 * * *"'), "jobs[0].cron: cron: field 2 (hour): 24 is out of range 0-23 (job 'j')"),
    (job("j", '"0 0 30 2 *"'), "jobs[0].cron: cron: field 3 (day of month): the expression never fires"),
    (job("j", '"@hourly"', extra="timezone: Mars/Olympus"), "jobs[0].timezone: tz: unknown time zone \"Mars/Olympus\""),
    (job("j", '"@daily"', args="{sleeep: 1s}"), "jobs[0].args.sleeep: unknown option (did you mean 'sleep'?)"),
    (job("j", '"@daily"', kind="http"), "jobs[0].args: 'url' is required for kind http (job 'j')"),
    (job("j", '"@daily"', extra="catchup: some"), "jobs[0].catchup: expected one of none, latest, all, got 'some'"),
    (job("j", '"@daily"') + job("j", '"@hourly"'), "jobs[1].name: duplicate job name 'j' (jobs[0])"),
])
def test_a_bad_job_is_refused_at_load(make_server, bad, message):
    s = make_server(start=False, extra_yaml=jobs_yaml(bad))
    p = subprocess.run([BIN, "serve", "--config", s.config_path], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr, p.stderr


def test_history_stays_flat_for_a_job_every_minute(make_server):
    # 600 times faster: a simulated minute every 0.1 s; four simulated hours of an every-minute
    # job with keep_runs 20 and keep_days 0 (the count alone)
    s = make_server(extra_yaml=jobs_yaml(job("often", '"* * * * *"',
                                             extra="keep_runs: 20\nkeep_days: 0")),
                    env=faketime_env(utc("2026-03-10T10:00:00"), speed=600))
    sizes = []

    def enough():
        with s.db() as db:
            n, top = db.query("SELECT count(*), coalesce(max(id), 0) FROM job_runs")[0]
        sizes.append(n)
        return top >= 240
    wait_for(enough, timeout=60, what="240 runs")
    # keep_runs, plus the few runs since the last prune (at most once a simulated minute, and
    # the scheduler may fall behind a clock this fast): flat, not one row a minute
    assert max(sizes) <= 30, sizes
    got = runs(s, "often")
    assert all(r["trigger"] in ("schedule", "catchup") for r in got)


def test_a_bad_job_is_refused_at_reload_and_the_jobs_in_force_stay(make_server):
    s = make_server(extra_yaml=jobs_yaml(job("j", NEVER)))
    s.write_config(jobs_yaml(job("j", '"61 * * * *"')))
    r = s.post("/api/v1/admin/reload")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "CONFIG_REFUSED"
    assert "jobs[0].cron: cron: field 1 (minute): 61 is out of range 0-59 (job 'j')" in r.json()["error"]["message"]
    assert s.get("/api/v1/jobs/j").json()["cron"] == "0 0 1 1 *"
    # a good edit is taken up at once
    s.write_config(jobs_yaml(job("j", '"15 3 * * *"', extra="timezone: Europe/Berlin")))
    assert s.post("/api/v1/admin/reload").status_code == 200
    j = s.get("/api/v1/jobs/j").json()
    assert j["cron"] == "15 3 * * *" and j["timezone"] == "Europe/Berlin"
    assert all(n["local"][11:19] == "03:15:00" for n in j["next_runs"])
