"""The scheduler on several nodes of one PostgreSQL (issue 16, section 3): one node runs it at
a time; every scheduled time of every job has exactly one run; when the leader is killed mid
run, the other node takes over within the lease, the dead run ends failed ("node lost") and is
retried there."""
import datetime

import pytest
import requests

from conftest import STORE, wait_for
from test_sched import NEVER, ended, faketime_env, job, jobs_yaml, runs, utc, wait_run

pytestmark = pytest.mark.skipif(STORE != "postgres", reason="several nodes need PostgreSQL")


def two_nodes(make_server, extra, env=None):
    a = make_server(extra_yaml=extra, env=env)
    b = make_server(start=False, extra_yaml=extra, env=env)
    b.pg_dbname = a.pg_dbname  # one database; each node its own data_dir and port
    b.write_config(extra_yaml=extra)
    b.start()
    return a, b


def leaders(*nodes):
    return [n for n in nodes if requests.get(n.url + "/health/scheduler", timeout=5).json()["leader"]]


def test_ten_every_minute_jobs_run_once_each_with_two_nodes(make_server):
    names = [f"j{i}" for i in range(10)]
    extra = jobs_yaml(*[job(n, '"* * * * *"') for n in names])
    a, b = two_nodes(make_server, extra, env=faketime_env(utc("2026-03-10T10:00:54")))
    wait_for(lambda: len(leaders(a, b)) == 1, timeout=15, what="one leader")
    wait_for(lambda: all(any(ended(r) for r in runs(a, n)) for n in names), timeout=30,
             what="a run of every job")
    lead = leaders(a, b)[0]
    for n in names:
        got = runs(b, n)
        assert [r["scheduled_at"] for r in got] == ["2026-03-10T10:01:00.000Z"], (n, got)
        assert got[0]["state"] == "succeeded"
        assert got[0]["node"].endswith(f":{lead.port}")
    with a.db() as db:  # and in the table itself: one row per (job, time)
        assert db.query("SELECT count(*), count(DISTINCT job) FROM job_runs")[0] == (10, 10)


def test_thirty_simulated_minutes_each_time_runs_exactly_once(make_server):
    # both nodes' clocks 60 times faster: ten every-minute jobs for 30 simulated minutes
    # (catchup: all, so that a tick the loaded machine makes late - a simulated minute is a
    # real second - still runs every time, once)
    names = [f"j{i}" for i in range(10)]
    extra = jobs_yaml(*[job(n, '"* * * * *"', extra="catchup: all") for n in names])
    a, b = two_nodes(make_server, extra, env=faketime_env(utc("2026-03-10T10:00:00"), speed=60))

    def thirty():
        with a.db() as db:
            return db.query("SELECT count(DISTINCT scheduled_ms) FROM job_runs")[0][0] >= 31
    wait_for(thirty, timeout=90, what="30 simulated minutes of runs")
    with a.db() as db:
        per_time = db.query("SELECT job, scheduled_ms, count(*) FROM job_runs "
                            "GROUP BY job, scheduled_ms HAVING count(*) > 1")
        assert per_time == []  # never twice
        first, last = db.query("SELECT min(scheduled_ms), max(scheduled_ms) FROM job_runs")[0]
        full = [t for (t,) in db.query("SELECT scheduled_ms FROM job_runs GROUP BY scheduled_ms "
                                       "HAVING count(DISTINCT job) = 10 ORDER BY 1")]
    # every minute from the first to the one before the last (that one may be under way) has
    # a run of each of the ten jobs
    missing = sorted(set(range(first, last, 60000)) - set(full))
    assert missing == [], (first, last, missing)


def test_leader_killed_mid_run_the_other_node_takes_over(make_server):
    extra = "\nscheduler: {lease_s: 3}\n" + jobs_yaml(
        job("long", NEVER, extra="retries: 1\nretry_backoff: 1s", args="{sleep: 5s}"))
    a, b = two_nodes(make_server, extra)
    wait_for(lambda: len(leaders(a, b)) == 1, timeout=15, what="one leader")
    lead = leaders(a, b)[0]
    other = b if lead is a else a
    run = other.post("/api/v1/jobs/long/trigger").json()["run"]  # queued through either node
    r = wait_for(lambda: (lambda x: x if x["state"] == "running" else None)(
        other.get(f"/api/v1/runs/{run['id']}").json()), timeout=15, what="the run to start")
    assert r["node"].endswith(f":{lead.port}")
    lead.kill9()
    wait_for(lambda: leaders(other), timeout=20, what="the other node to take over")
    lost = wait_run(other, run["id"], timeout=30)
    assert lost["state"] == "failed" and lost["reason"] == "node lost"
    retry = wait_for(lambda: [x for x in runs(other, "long") if x["attempt"] == 2 and ended(x)],
                     timeout=40, what="the retry on the other node")[0]
    assert retry["trigger"] == "retry" and retry["state"] == "succeeded"
    assert retry["node"].endswith(f":{other.port}")
    assert datetime.datetime.fromisoformat(retry["scheduled_at"][:-1]) == \
        datetime.datetime.fromisoformat(run["scheduled_at"][:-1])
