/*
 * test_sentinel_jobs.c - the sentinel's job rules (src/ops/sentinel.c): job_failing (a job's
 * last runs failed, none succeeded since) and job_missed (a run was due and did not start
 * within its job's grace), each shown to fire and to stay quiet, on a fresh SQLite store in a
 * temp directory whose runs and job_state rows the tests write through the store's ops, with a
 * configuration loaded from YAML and the evaluation's clock set by the test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "ops/sentinel.h"
#include "store/store.h"

#define T0 1773568800000LL /* 2026-03-15T10:00:00.000Z */
#define MIN 60000LL
#define HOUR 3600000LL

static char dir[64], db_path[128], cfg_path[128];
static struct store *st;
static struct sluice_config cfg;
static int cfg_loaded;

static void open_fresh(void)
{
    char err[256] = "", uri[160];
    snprintf(dir, sizeof dir, "/tmp/sluice-sentinel-jobs-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/sluice.yaml", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", db_path);
    st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "store_open(%s): %s", uri, err);
    cr_assert_eq(store_migrate(st), 0, "migrate: %s", store_errmsg(st));
}

static void cleanup(void)
{
    if (cfg_loaded)
        config_release(&cfg);
    cfg_loaded = 0;
    store_close(st);
    st = NULL;
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
        unlink(p);
    }
    unlink(cfg_path);
    rmdir(dir);
}

/* The configuration: data_dir is the temp directory, then extra (the jobs, sentinel rules). */
static void load(const char *extra)
{
    FILE *fp = fopen(cfg_path, "w");
    cr_assert_not_null(fp);
    fprintf(fp, "data_dir: %s\n%s", dir, extra);
    fclose(fp);
    char err[512] = "";
    cr_assert_eq(config_load(cfg_path, &cfg, err, sizeof err), 0, "%s", err);
    cfg_loaded = 1;
}

/* A run of job at sched (trigger schedule) started at sched and ended in state at sched + 1 s,
 * with error (NULL: none). */
static int64_t ended(const char *job, int64_t sched, const char *state, const char *error)
{
    struct job_run_new r = {.job = job,
                            .scheduled_ms = sched,
                            .attempt = 1,
                            .trigger = "schedule",
                            .state = "queued",
                            .created_ms = sched};
    int64_t id = -1;
    cr_assert_eq(store_job_run_add(st, &r, &id), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_job_run_start(st, id, "n1", sched + MIN, sched), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_job_run_finish(st, id, "n1", state, -1, error, sched + 1000), 0, "%s",
                 store_errmsg(st));
    return id;
}

/* A run of job at sched that is queued (created at created_ms) or skipped. */
static int64_t added(const char *job, int64_t sched, const char *state, int64_t created_ms)
{
    struct job_run_new r = {.job = job,
                            .scheduled_ms = sched,
                            .attempt = 1,
                            .trigger = "schedule",
                            .state = state,
                            .reason = !strcmp(state, "skipped") ? "overlap: a run is queued" : NULL,
                            .created_ms = created_ms};
    int64_t id = -1;
    cr_assert_eq(store_job_run_add(st, &r, &id), 0, "%s", store_errmsg(st));
    return id;
}

static void state_put(const char *job, int paused, int64_t last_due_ms, const char *cron)
{
    struct job_state s = {.job = (char *)job,
                          .paused = paused,
                          .last_due_ms = last_due_ms,
                          .cron = (char *)cron,
                          .updated_ms = last_due_ms};
    cr_assert_eq(store_job_state_put(st, &s), 0, "%s", store_errmsg(st));
}

/* When watching began (sentinel_input.started_ms); 0: a day before each evaluation. */
static int64_t started_ms;

/* The findings of rule at now_ms for job (NULL: any job), as a new array; the rule's
 * undecided entries for job (labels {"job"}) into *undecided when not NULL, else there must
 * be none. */
static json_t *findings_u(const char *rule, const char *job, int64_t now_ms, json_t **undecided)
{
    struct sentinel_input in = {.cfg = &cfg,
                                .st = st,
                                .now_ms = now_ms,
                                .started_ms = started_ms ? started_ms : now_ms - 24 * HOUR};
    json_t *rep = sentinel_evaluate(&in);
    cr_assert_not_null(rep);
    json_t *out = json_array(), *f;
    size_t i;
    json_array_foreach(json_object_get(rep, "findings"), i, f)
    {
        const char *j = json_string_value(json_object_get(json_object_get(f, "labels"), "job"));
        if (!strcmp(json_string_value(json_object_get(f, "rule")), rule) &&
            (!job || (j && !strcmp(j, job))))
            json_array_append(out, f);
    }
    if (undecided)
        *undecided = json_array();
    json_array_foreach(json_object_get(rep, "undecided"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "rule")), rule) != 0)
            continue;
        cr_expect_not_null(undecided, "%s is undecided", rule);
        if (undecided)
            json_array_append(*undecided, f);
    }
    json_decref(rep);
    return out;
}

static json_t *findings(const char *rule, const char *job, int64_t now_ms)
{
    return findings_u(rule, job, now_ms, NULL);
}

static size_t count(const char *rule, const char *job, int64_t now_ms)
{
    json_t *v = findings(rule, job, now_ms);
    size_t n = json_array_size(v);
    json_decref(v);
    return n;
}

static const char *str(const json_t *o, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

#define JOBS                                                                                       \
    "jobs:\n"                                                                                      \
    "  - {name: refresh, cron: '0 * * * *', kind: noop}\n"                                         \
    "  - {name: other, cron: '0 * * * *', kind: noop}\n"

TestSuite(sentinel_jobs, .init = open_fresh, .fini = cleanup);

/* ---- job_failing --------------------------------------------------------------------------- */

Test(sentinel_jobs, failing_after_three_failures_then_a_success_clears)
{
    load(JOBS);
    int64_t now = T0 + 10 * HOUR;
    cr_expect_eq(count("job_failing", NULL, now), 0, "no run at all: nothing");
    ended("refresh", T0, "succeeded", NULL);
    ended("refresh", T0 + HOUR, "failed", "exit 1");
    ended("refresh", T0 + 2 * HOUR, "failed", "exit 2");
    cr_expect_eq(count("job_failing", NULL, now), 0, "2 failures < 3");
    int64_t id = ended("refresh", T0 + 3 * HOUR, "failed", "http: 503 Service Unavailable");
    ended("other", T0 + 3 * HOUR, "failed", "not this one");

    json_t *v = findings("job_failing", NULL, now);
    cr_assert_eq(json_array_size(v), 1, "only refresh has 3 failures");
    json_t *f = json_array_get(v, 0);
    cr_expect_str_eq(str(f, "severity", NULL), "warning");
    cr_expect_str_eq(str(f, "labels", "job"), "refresh");
    cr_expect_eq(json_object_size(json_object_get(f, "labels")), 1);
    cr_expect_str_eq(str(f, "summary", NULL),
                     "job refresh failed 3 times in a row: http: 503 Service Unavailable");
    json_t *d = json_object_get(f, "details");
    cr_expect_eq(json_integer_value(json_object_get(d, "consecutive_failures")), 3);
    cr_expect_str_eq(str(d, "last_success_at", NULL), "2026-03-15T10:00:01.000Z");
    cr_expect_str_eq(str(d, "last_failure_at", NULL), "2026-03-15T13:00:01.000Z");
    cr_expect_str_eq(str(d, "error", NULL), "http: 503 Service Unavailable");
    cr_expect_eq(json_integer_value(json_object_get(d, "last_run_id")), id);
    json_decref(v);

    /* a skipped run neither ends the streak nor hides the last error */
    added("refresh", T0 + 4 * HOUR, "skipped", T0 + 4 * HOUR);
    v = findings("job_failing", "refresh", now);
    cr_assert_eq(json_array_size(v), 1);
    cr_expect_str_eq(str(json_array_get(v, 0), "details", "error"),
                     "http: 503 Service Unavailable");
    json_decref(v);

    ended("refresh", T0 + 5 * HOUR, "succeeded", NULL);
    cr_expect_eq(count("job_failing", NULL, now), 0, "a success clears it");
}

Test(sentinel_jobs, failing_never_succeeded_and_options)
{
    load(JOBS "sentinel:\n"
              "  rules:\n"
              "    job_failing: {after_failures: 2, severity: critical}\n");
    cr_expect_eq(cfg.sentinel.job_failing.after_failures, 2);
    ended("other", T0, "failed", NULL);
    cr_expect_eq(count("job_failing", NULL, T0 + HOUR), 0);
    ended("other", T0 + HOUR, "failed", NULL);
    json_t *v = findings("job_failing", NULL, T0 + 2 * HOUR);
    cr_assert_eq(json_array_size(v), 1);
    json_t *f = json_array_get(v, 0);
    cr_expect_str_eq(str(f, "severity", NULL), "critical");
    cr_expect_str_eq(str(f, "labels", "job"), "other");
    cr_expect_str_eq(str(f, "summary", NULL),
                     "job other failed 2 times in a row: (no error recorded)");
    cr_expect(json_is_null(json_object_get(json_object_get(f, "details"), "last_success_at")));
    json_decref(v);
}

Test(sentinel_jobs, failing_defaults)
{
    load("");
    cr_expect_eq(cfg.sentinel.job_failing.after_failures, 3);
    cr_expect_eq(cfg.sentinel.job_failing.severity, 0); /* warning */
    cr_expect_eq(cfg.sentinel.job_missed.severity, 0);
}

/* ---- job_missed ---------------------------------------------------------------------------- */

Test(sentinel_jobs, missed_when_a_due_time_is_past_its_grace)
{
    load(JOBS);
    /* no job_state row: no scheduler has seen the job, it is not missed */
    cr_expect_eq(count("job_missed", NULL, T0 + 10 * HOUR), 0);

    state_put("refresh", 0, T0, "0 * * * *");
    cr_expect_eq(count("job_missed", NULL, T0 + 30 * MIN), 0, "the next time is 11:00");
    cr_expect_eq(count("job_missed", NULL, T0 + HOUR + 30000), 0, "due 30 s ago, grace 1m");
    cr_expect_eq(count("job_missed", NULL, T0 + HOUR + MIN), 0, "exactly the grace: not yet");

    json_t *v = findings("job_missed", NULL, T0 + HOUR + 2 * MIN);
    cr_assert_eq(json_array_size(v), 1);
    json_t *f = json_array_get(v, 0);
    cr_expect_str_eq(str(f, "severity", NULL), "warning");
    cr_expect_str_eq(str(f, "labels", "job"), "refresh");
    cr_expect_eq(json_object_size(json_object_get(f, "labels")), 1);
    cr_expect_str_eq(
        str(f, "summary", NULL),
        "job refresh did not run at 2026-03-15T11:00:00.000Z: no scheduler dealt with it "
        "within its grace (1m)");
    json_t *d = json_object_get(f, "details");
    cr_expect_str_eq(str(d, "due_at", NULL), "2026-03-15T11:00:00.000Z");
    cr_expect_str_eq(str(d, "last_due_at", NULL), "2026-03-15T10:00:00.000Z");
    cr_expect_eq(json_integer_value(json_object_get(d, "grace_s")), 60);
    cr_expect_eq(json_integer_value(json_object_get(d, "late_s")), 120);
    json_decref(v);

    /* the scheduler dealt with 11:00: quiet until 12:00 + grace */
    state_put("refresh", 0, T0 + HOUR, "0 * * * *");
    cr_expect_eq(count("job_missed", NULL, T0 + HOUR + 2 * MIN), 0);
    cr_expect_eq(count("job_missed", NULL, T0 + 2 * HOUR + 2 * MIN), 1);
}

Test(sentinel_jobs, missed_not_when_paused_disabled_or_within_a_longer_grace)
{
    load("jobs:\n"
         "  - {name: paused, cron: '0 * * * *', kind: noop}\n"
         "  - {name: disabled, cron: '0 * * * *', kind: noop, enabled: false}\n"
         "  - {name: slow, cron: '0 * * * *', kind: noop, grace: 10m}\n"
         "sentinel: {rules: {job_missed: {severity: critical}}}\n");
    state_put("paused", 1, T0, "0 * * * *");
    state_put("disabled", 0, T0, "0 * * * *");
    state_put("slow", 0, T0, "0 * * * *");
    added("paused", T0, "queued", T0); /* a queued run of a paused job is not missed either */
    int64_t now = T0 + HOUR + 5 * MIN;
    cr_expect_eq(count("job_missed", NULL, now), 0, "paused, disabled, within 10m");
    json_t *v = findings("job_missed", NULL, T0 + HOUR + 11 * MIN);
    cr_assert_eq(json_array_size(v), 1);
    cr_expect_str_eq(str(json_array_get(v, 0), "labels", "job"), "slow");
    cr_expect_str_eq(str(json_array_get(v, 0), "severity", NULL), "critical");
    json_decref(v);

    /* resumed: paused's 11:00 is overdue now */
    state_put("paused", 0, T0, "0 * * * *");
    cr_expect_eq(count("job_missed", "paused", now), 1);
}

Test(sentinel_jobs, missed_measured_with_the_expression_the_scheduler_used)
{
    /* the configuration now says every minute; the scheduler last reckoned with a daily
     * expression (it has not taken the reload up yet): nothing is overdue under that one */
    load("jobs:\n  - {name: refresh, cron: '* * * * *', kind: noop}\n");
    int64_t midnight = 1773532800000LL; /* 2026-03-15T00:00:00.000Z */
    state_put("refresh", 0, midnight, "0 0 * * *");
    cr_expect_eq(count("job_missed", NULL, midnight + HOUR), 0);
    cr_expect_eq(count("job_missed", NULL, midnight + 24 * HOUR + 2 * MIN), 1);
    /* the scheduler took the new expression up (from now): the next minute counts */
    state_put("refresh", 0, midnight + HOUR, "* * * * *");
    cr_expect_eq(count("job_missed", NULL, midnight + HOUR + 90000), 0);
    cr_expect_eq(count("job_missed", NULL, midnight + HOUR + 3 * MIN), 1);
}

Test(sentinel_jobs, missed_when_a_queued_run_does_not_start)
{
    load(JOBS);
    int64_t now = T0 + 30 * MIN;
    state_put("refresh", 0, T0, "0 * * * *"); /* 10:00 dealt with, the next at 11:00 */
    state_put("other", 0, T0, "0 * * * *");
    added("other", T0, "queued", T0 + 29 * MIN);
    cr_expect_eq(count("job_missed", "other", now), 0, "queued a minute ago: within grace");

    /* queued 5 minutes ago and no runner took it; a later run skipped behind it */
    ended("refresh", T0 - 3 * HOUR, "succeeded", NULL);
    int64_t q = added("refresh", T0, "queued", T0 + 25 * MIN);
    added("refresh", T0 + 26 * MIN, "skipped", T0 + 26 * MIN);
    json_t *v = findings("job_missed", NULL, now);
    cr_assert_eq(json_array_size(v), 1, "refresh only");
    json_t *f = json_array_get(v, 0);
    cr_expect_str_eq(str(f, "labels", "job"), "refresh");
    char want[200];
    snprintf(
        want, sizeof want,
        "job refresh: run %lld has waited since 2026-03-15T10:25:00.000Z and not started within "
        "its grace (1m)",
        (long long)q);
    cr_expect_str_eq(str(f, "summary", NULL), want);
    json_t *d = json_object_get(f, "details");
    cr_expect_eq(json_integer_value(json_object_get(d, "run_id")), q);
    cr_expect_str_eq(str(d, "waiting_since", NULL), "2026-03-15T10:25:00.000Z");
    cr_expect_eq(json_integer_value(json_object_get(d, "late_s")), 300);
    json_decref(v);

    /* it started: nothing waits */
    cr_assert_eq(store_job_run_start(st, q, "n1", now + MIN, now), 0, "%s", store_errmsg(st));
    cr_expect_eq(count("job_missed", NULL, now), 0);
}

Test(sentinel_jobs, missed_not_when_queued_behind_a_running_run)
{
    load(JOBS);
    state_put("refresh", 0, T0, "0 * * * *");
    /* a catch-up's runs queue behind each other: one runs (its lease renewed), one waits */
    int64_t a = added("refresh", T0 - HOUR, "queued", T0);
    added("refresh", T0, "queued", T0);
    cr_assert_eq(store_job_run_start(st, a, "n1", T0 + 40 * MIN, T0), 0, "%s", store_errmsg(st));
    cr_expect_eq(count("job_missed", NULL, T0 + 30 * MIN), 0, "waits behind a live run");
    /* the running run's node died (its lease ended): the queued one waits for nothing */
    cr_expect_eq(count("job_missed", "refresh", T0 + 45 * MIN), 1);
    /* it ended a moment ago: the queued one waits from then, within grace */
    cr_assert_eq(store_job_run_finish(st, a, "n1", "succeeded", -1, NULL, T0 + 30 * MIN), 0, "%s",
                 store_errmsg(st));
    cr_expect_eq(count("job_missed", NULL, T0 + 30 * MIN + 30000), 0);
    cr_expect_eq(count("job_missed", NULL, T0 + 32 * MIN), 1);
}

Test(sentinel_jobs, missed_undecided_for_a_grace_after_the_start)
{
    /* the server was down over 11:00 and started at 11:30: its scheduler deals with 11:00
     * (by the job's catchup) at its first tick, so for a grace the rule does not decide */
    load(JOBS);
    state_put("refresh", 0, T0, "0 * * * *");
    state_put("other", 0, T0 + HOUR, "0 * * * *"); /* nothing due: neither fires nor waits */
    started_ms = T0 + HOUR + 30 * MIN;
    json_t *u = NULL, *v = findings_u("job_missed", NULL, started_ms + 30000, &u);
    cr_expect_eq(json_array_size(v), 0);
    cr_assert_eq(json_array_size(u), 1);
    cr_expect_str_eq(str(json_array_get(u, 0), "labels", "job"), "refresh");
    json_decref(v);
    json_decref(u);
    /* a grace later the scheduler should have dealt with it: missed */
    v = findings_u("job_missed", NULL, started_ms + 2 * MIN, &u);
    cr_expect_eq(json_array_size(v), 1);
    cr_expect_eq(json_array_size(u), 0);
    json_decref(v);
    json_decref(u);
}
