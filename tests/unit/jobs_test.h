/*
 * jobs_test.h - the scheduler's history (store/jobs.h), the same assertions on both backends
 * (test_store_jobs.c on SQLite, test_store_pg_jobs.c on PostgreSQL): each function takes a
 * freshly migrated store and is one Test there. Header-only; include after criterion.h.
 */
#ifndef SLUICE_TESTS_JOBS_TEST_H
#define SLUICE_TESTS_JOBS_TEST_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/tables.h"

#define JT0 1773570000000LL /* 2026-03-15T10:20:00Z */
#define JMIN 60000LL
#define JDAY 86400000LL

/* Add a run; expect rc (0 new, 1 existing); its id. */
static int64_t jt_add(struct store *st, const char *job, int64_t sched, int attempt,
                      const char *trigger, const char *state, const char *idem, int rc)
{
    struct job_run_new r = {.job = job,
                            .scheduled_ms = sched,
                            .attempt = attempt,
                            .trigger = trigger,
                            .state = state,
                            .reason = !strcmp(state, "skipped") ? "run 1 still running" : NULL,
                            .idem_key = idem,
                            .created_ms = sched};
    int64_t id = -1;
    cr_assert_eq(store_job_run_add(st, &r, &id), rc, "add %s@%lld#%d: %s", job, (long long)sched,
                 attempt, store_errmsg(st));
    cr_assert_gt(id, 0);
    return id;
}

/* A run of job at sched that ended in state (succeeded, failed, canceled) at sched + 1 s. */
static int64_t jt_ended(struct store *st, const char *job, int64_t sched, const char *state)
{
    int64_t id = jt_add(st, job, sched, 1, "schedule", "queued", NULL, 0);
    cr_assert_eq(store_job_run_start(st, id, "n1", sched + JMIN, sched), 0, "%s",
                 store_errmsg(st));
    cr_assert_eq(store_job_run_finish(st, id, "n1", state, 3, NULL, sched + 1000), 0, "%s",
                 store_errmsg(st));
    return id;
}

static void jt_get(struct store *st, int64_t id, struct job_run *r)
{
    cr_assert_eq(store_job_run_get(st, id, r), 0, "get %lld: %s", (long long)id,
                 store_errmsg(st));
}

static const struct table_def *jt_table(const char *name)
{
    for (size_t i = 0; i < store_ntables; i++)
        if (!strcmp(store_tables[i].name, name))
            return &store_tables[i];
    return NULL;
}

static int64_t jt_rows(struct store *st)
{
    int64_t n = -1;
    cr_assert_eq(store_table_count(st, jt_table("job_runs"), &n), 0, "%s", store_errmsg(st));
    return n;
}

/* ---- add and its duplicates ------------------------------------------------------------ */

static void jobs_add_duplicate(struct store *st)
{
    int64_t a = jt_add(st, "refresh", JT0, 1, "schedule", "queued", NULL, 0);
    /* the same scheduled time and attempt, from another node or a second leader: 1, its id */
    cr_expect_eq(jt_add(st, "refresh", JT0, 1, "catchup", "queued", NULL, 1), a);
    cr_expect_eq(jt_add(st, "refresh", JT0, 1, "schedule", "skipped", NULL, 1), a);
    int64_t retry = jt_add(st, "refresh", JT0, 2, "retry", "queued", NULL, 0);
    cr_expect_neq(retry, a, "another attempt is another run");
    int64_t other = jt_add(st, "export", JT0, 1, "schedule", "queued", NULL, 0);
    cr_expect_neq(other, a, "another job at the same time");

    /* manual triggers: the same Idempotency-Key gives the same run, at any time */
    int64_t m = jt_add(st, "refresh", JT0 + 5000, 1, "manual", "queued", "key-1", 0);
    cr_expect_eq(jt_add(st, "refresh", JT0 + 9000, 1, "manual", "queued", "key-1", 1), m);
    cr_expect_neq(jt_add(st, "export", JT0 + 9000, 1, "manual", "queued", "key-1", 0), m,
                  "a key is per job");
    cr_expect_neq(jt_add(st, "refresh", JT0 + 9000, 1, "manual", "queued", "key-2", 0), m);

    struct job_run r;
    jt_get(st, m, &r);
    cr_expect_str_eq(r.job, "refresh");
    cr_expect_eq(r.scheduled_ms, JT0 + 5000);
    cr_expect_eq(r.attempt, 1);
    cr_expect_str_eq(r.trigger, "manual");
    cr_expect_str_eq(r.state, "queued");
    cr_expect_str_eq(r.idem_key, "key-1");
    cr_expect_null(r.node);
    cr_expect_null(r.reason);
    cr_expect_eq(r.created_ms, JT0 + 5000);
    cr_expect_eq(r.started_ms, 0);
    cr_expect_eq(r.ended_ms, 0);
    cr_expect_eq(r.items, -1);
    cr_expect_eq(r.cancel_requested, 0);
    job_run_release(&r);

    /* a skipped run is ended when added and says why */
    int64_t s = jt_add(st, "refresh", JT0 + JMIN, 1, "schedule", "skipped", NULL, 0);
    jt_get(st, s, &r);
    cr_expect_str_eq(r.state, "skipped");
    cr_expect_str_eq(r.reason, "run 1 still running");
    cr_expect_eq(r.ended_ms, JT0 + JMIN);
    job_run_release(&r);

    /* refused: a state other than queued or skipped, a trigger the CHECK does not know */
    struct job_run_new bad = {.job = "refresh",
                              .scheduled_ms = JT0 + 2 * JMIN,
                              .attempt = 1,
                              .trigger = "schedule",
                              .state = "running",
                              .created_ms = JT0};
    int64_t id = 0;
    cr_expect_eq(store_job_run_add(st, &bad, &id), -1);
    bad.state = "queued";
    bad.trigger = "cron";
    cr_expect_eq(store_job_run_add(st, &bad, &id), -1);
    cr_expect_neq(strstr(store_errmsg(st), "job run add"), NULL, "%s", store_errmsg(st));
    cr_expect_eq(store_job_run_get(st, 999999, &r), 1, "not found");
}

/* ---- the state machine --------------------------------------------------------------- */

static void jobs_state_machine(struct store *st)
{
    int64_t id = jt_add(st, "refresh", JT0, 1, "schedule", "queued", NULL, 0);
    cr_expect_eq(store_job_run_renew(st, id, "n1", JT0 + JMIN), 1, "a queued run is not running");
    cr_expect_eq(store_job_run_finish(st, id, "n1", "succeeded", 1, NULL, JT0), 1,
                 "a queued run cannot finish");
    cr_assert_eq(store_job_run_start(st, id, "n1", JT0 + JMIN, JT0 + 10), 0, "%s",
                 store_errmsg(st));
    cr_expect_eq(store_job_run_start(st, id, "n2", JT0 + JMIN, JT0 + 20), 1, "taken already");
    struct job_run r;
    jt_get(st, id, &r);
    cr_expect_str_eq(r.state, "running");
    cr_expect_str_eq(r.node, "n1");
    cr_expect_eq(r.started_ms, JT0 + 10);
    cr_expect_eq(r.lease_until_ms, JT0 + JMIN);
    job_run_release(&r);

    cr_expect_eq(store_job_run_renew(st, id, "n1", JT0 + 2 * JMIN), 0, "%s", store_errmsg(st));
    jt_get(st, id, &r);
    cr_expect_eq(r.lease_until_ms, JT0 + 2 * JMIN);
    job_run_release(&r);

    cr_expect_eq(store_job_run_finish(st, id, "n1", "running", 1, NULL, JT0), -1,
                 "finish only to an end state");
    cr_expect_eq(store_job_run_finish(st, id, "n1", "queued", 1, NULL, JT0), -1);
    cr_assert_eq(store_job_run_finish(st, id, "n1", "failed", 42, "HTTP 500", JT0 + 3000), 0, "%s",
                 store_errmsg(st));
    jt_get(st, id, &r);
    cr_expect_str_eq(r.state, "failed");
    cr_expect_eq(r.items, 42);
    cr_expect_str_eq(r.error, "HTTP 500");
    cr_expect_eq(r.ended_ms, JT0 + 3000);
    job_run_release(&r);
    cr_expect_eq(store_job_run_finish(st, id, "n1", "succeeded", 1, NULL, JT0 + 4000), 1,
                 "ended already");
    cr_expect_eq(store_job_run_start(st, id, "n1", JT0 + JMIN, JT0 + 4000), 1);
    cr_expect_eq(store_job_run_renew(st, id, "n1", JT0 + 3 * JMIN), 1, "the runner must stop");

    /* no items, no error */
    int64_t ok = jt_add(st, "refresh", JT0 + JMIN, 1, "schedule", "queued", NULL, 0);
    cr_assert_eq(store_job_run_start(st, ok, "n1", JT0 + 2 * JMIN, JT0 + JMIN), 0);
    cr_assert_eq(store_job_run_finish(st, ok, "n1", "succeeded", -1, NULL, JT0 + JMIN + 5), 0);
    jt_get(st, ok, &r);
    cr_expect_str_eq(r.state, "succeeded");
    cr_expect_eq(r.items, -1);
    cr_expect_null(r.error);
    job_run_release(&r);
}

/* ---- fencing: a node that lost the run must stop ---------------------------------------- */

static void jobs_fencing(struct store *st)
{
    int64_t id = jt_add(st, "refresh", JT0, 1, "schedule", "queued", NULL, 0);
    cr_assert_eq(store_job_run_start(st, id, "n1", JT0 + JMIN, JT0), 0);
    cr_expect_eq(store_job_run_renew(st, id, "n2", JT0 + 5 * JMIN), 1, "another node's run");
    cr_expect_eq(store_job_run_finish(st, id, "n2", "succeeded", 1, NULL, JT0 + 10), 1);
    struct job_run r;
    jt_get(st, id, &r);
    cr_expect_str_eq(r.state, "running");
    cr_expect_str_eq(r.node, "n1");
    cr_expect_eq(r.lease_until_ms, JT0 + JMIN, "n2 moved nothing");
    job_run_release(&r);
    cr_expect_eq(store_job_run_renew(st, id, "n1", JT0 + 2 * JMIN), 0);
    cr_expect_eq(store_job_run_finish(st, id, "n1", "succeeded", 1, NULL, JT0 + 20), 0);
}

/* ---- cancel, queued and running ---------------------------------------------------------- */

static void jobs_cancel(struct store *st)
{
    int64_t q = jt_add(st, "refresh", JT0, 1, "schedule", "queued", NULL, 0);
    cr_expect_eq(store_job_run_cancel(st, q, "by operator", JT0 + 100), 0, "%s", store_errmsg(st));
    struct job_run r;
    jt_get(st, q, &r);
    cr_expect_str_eq(r.state, "canceled");
    cr_expect_str_eq(r.reason, "by operator");
    cr_expect_eq(r.ended_ms, JT0 + 100);
    cr_expect_eq(r.cancel_requested, 0);
    job_run_release(&r);
    cr_expect_eq(store_job_run_start(st, q, "n1", JT0 + JMIN, JT0 + 200), 1, "canceled: not taken");
    cr_expect_eq(store_job_run_cancel(st, q, "again", JT0 + 300), 1, "ended already");

    int64_t run = jt_add(st, "refresh", JT0 + JMIN, 1, "schedule", "queued", NULL, 0);
    cr_assert_eq(store_job_run_start(st, run, "n1", JT0 + 2 * JMIN, JT0 + JMIN), 0);
    cr_expect_eq(store_job_run_cancel(st, run, "by operator", JT0 + JMIN + 5), 2,
                 "running: a request");
    jt_get(st, run, &r);
    cr_expect_str_eq(r.state, "running", "still running until the runner sees it");
    cr_expect_eq(r.cancel_requested, 1);
    cr_expect_eq(r.ended_ms, 0);
    job_run_release(&r);
    cr_expect_eq(store_job_run_renew(st, run, "n1", JT0 + 3 * JMIN), 2, "renew: cancel requested");
    cr_expect_eq(store_job_run_renew(st, run, "n2", JT0 + 3 * JMIN), 1, "not n2's");
    cr_expect_eq(store_job_run_finish(st, run, "n1", "canceled", 7, NULL, JT0 + JMIN + 50), 0);
    jt_get(st, run, &r);
    cr_expect_str_eq(r.state, "canceled");
    cr_expect_str_eq(r.reason, "by operator");
    cr_expect_eq(r.items, 7);
    cr_expect_eq(r.ended_ms, JT0 + JMIN + 50);
    job_run_release(&r);
    cr_expect_eq(store_job_run_cancel(st, run, NULL, JT0 + 2 * JMIN), 1, "ended already");
    cr_expect_eq(store_job_run_cancel(st, 987654, NULL, JT0), 3, "no such run");
}

/* ---- runs whose node died ------------------------------------------------------------------ */

static void jobs_lost(struct store *st)
{
    int64_t dead = jt_add(st, "refresh", JT0, 1, "schedule", "queued", NULL, 0);
    int64_t live = jt_add(st, "export", JT0, 1, "schedule", "queued", NULL, 0);
    int64_t queued = jt_add(st, "refresh", JT0 + JMIN, 1, "schedule", "queued", NULL, 0);
    cr_assert_eq(store_job_run_start(st, dead, "n1", JT0 + 30000, JT0), 0);
    cr_assert_eq(store_job_run_start(st, live, "n2", JT0 + 5 * JMIN, JT0), 0);

    struct job_run *v;
    size_t n;
    cr_assert_eq(store_job_runs_lost(st, JT0 + 30000, &v, &n), 0, "%s", store_errmsg(st));
    cr_expect_eq(n, 0, "a lease that ends now has not ended before now");
    job_runs_free(v, n);

    cr_assert_eq(store_job_runs_lost(st, JT0 + JMIN, &v, &n), 0, "%s", store_errmsg(st));
    cr_assert_eq(n, 1);
    cr_expect_eq(v[0].id, dead);
    cr_expect_str_eq(v[0].job, "refresh");
    cr_expect_eq(v[0].scheduled_ms, JT0);
    cr_expect_eq(v[0].attempt, 1);
    cr_expect_str_eq(v[0].state, "failed");
    cr_expect_str_eq(v[0].reason, "node lost");
    cr_expect_eq(v[0].ended_ms, JT0 + JMIN);
    job_runs_free(v, n);

    cr_assert_eq(store_job_runs_lost(st, JT0 + 2 * JMIN, &v, &n), 0);
    cr_expect_eq(n, 0, "returned once");
    job_runs_free(v, n);
    cr_expect_eq(store_job_run_renew(st, dead, "n1", JT0 + 3 * JMIN), 1, "the runner must stop");
    cr_expect_eq(store_job_run_finish(st, dead, "n1", "succeeded", 1, NULL, JT0 + 3 * JMIN), 1);
    struct job_run r;
    jt_get(st, dead, &r);
    cr_expect_str_eq(r.state, "failed");
    job_run_release(&r);
    jt_get(st, live, &r);
    cr_expect_str_eq(r.state, "running");
    job_run_release(&r);
    jt_get(st, queued, &r);
    cr_expect_str_eq(r.state, "queued", "a queued run has no lease");
    job_run_release(&r);

    /* the retry the scheduler adds: the next attempt of the same time */
    int64_t retry = jt_add(st, "refresh", JT0, 2, "retry", "queued", NULL, 0);
    cr_expect_neq(retry, dead);
}

/* ---- pruning ------------------------------------------------------------------------------ */

static int64_t jt_prune(struct store *st, const char *job, int keep, int64_t before,
                        int64_t fbefore)
{
    int64_t d = -1;
    cr_assert_eq(store_job_runs_prune(st, job, keep, before, fbefore, &d), 0, "%s",
                 store_errmsg(st));
    return d;
}

static int jt_exists(struct store *st, int64_t id)
{
    struct job_run r;
    int rc = store_job_run_get(st, id, &r);
    cr_assert_geq(rc, 0, "%s", store_errmsg(st));
    job_run_release(&r);
    return rc == 0;
}

static void jobs_prune(struct store *st)
{
    /* 10 daily runs of "daily", days 0..9; day 2 and day 5 failed; another job beside it */
    int64_t id[10];
    for (int d = 0; d < 10; d++)
        id[d] = jt_ended(st, "daily", JT0 + d * JDAY, d == 2 || d == 5 ? "failed" : "succeeded");
    int64_t other = jt_ended(st, "other", JT0, "succeeded");
    int64_t queued = jt_add(st, "daily", JT0 - 5 * JDAY, 1, "catchup", "queued", NULL, 0);
    int64_t running = jt_add(st, "daily", JT0 - 4 * JDAY, 1, "catchup", "queued", NULL, 0);
    cr_assert_eq(store_job_run_start(st, running, "n1", JT0 + 99 * JDAY, JT0), 0);
    /* the two active runs are the newest ids: keep_runs counts them */

    cr_expect_eq(jt_prune(st, "daily", 0, 0, 0), 0, "no bound: nothing");
    cr_expect_eq(jt_prune(st, "daily", 100, 0, 0), 0, "fewer runs than keep_runs");

    /* keep the newest 6 (running, queued, days 9..6), and only what ended before day 3 goes
     * of the rest: days 0 and 1 (day 2 failed, kept until the failed bound, day 1 + 1 s) */
    int64_t day3 = JT0 + 3 * JDAY;
    cr_expect_eq(jt_prune(st, "daily", 6, day3, JT0 + JDAY + 1000), 2);
    cr_expect(!jt_exists(st, id[0]) && !jt_exists(st, id[1]));
    cr_expect(jt_exists(st, id[2]), "failed runs are kept longer");
    cr_expect(jt_exists(st, id[3]) && jt_exists(st, id[4]), "not old enough");
    cr_expect(jt_exists(st, other), "another job's");
    cr_expect_eq(jt_prune(st, "daily", 6, day3, JT0 + JDAY + 1000), 0, "nothing more");

    /* failed bound off: failed runs go by the same age */
    cr_expect_eq(jt_prune(st, "daily", 6, day3, 0), 1);
    cr_expect(!jt_exists(st, id[2]));

    /* no age bound: beyond the newest 6 all go, but failed runs kept longer */
    cr_expect_eq(jt_prune(st, "daily", 6, 0, JT0 + JDAY), 2, "days 3 and 4, not the failed 5");
    cr_expect_eq(jt_prune(st, "daily", 4, 0, JT0 + 5 * JDAY), 2, "days 6 and 7");
    cr_expect(jt_exists(st, id[5]), "failed, kept until its own bound");
    cr_expect(!jt_exists(st, id[6]) && !jt_exists(st, id[7]));
    cr_expect(jt_exists(st, id[8]) && jt_exists(st, id[9]), "among the newest 4");
    /* the age alone; whatever the bounds, never an active run */
    cr_expect_eq(jt_prune(st, "daily", 0, JT0 + 100 * JDAY, JT0 + 100 * JDAY), 3,
                 "days 5, 8 and 9");
    cr_expect_eq(jt_prune(st, "daily", 1, JT0 + 100 * JDAY, 0), 0);
    cr_expect(jt_exists(st, queued) && jt_exists(st, running), "active runs are never pruned");
    cr_expect(jt_exists(st, other));
    cr_expect_eq(jt_rows(st), 3);
    cr_assert_eq(store_job_runs_prune(st, "daily", 0, JT0 + 100 * JDAY, 0, NULL), 0,
                 "deleted may be NULL");
}

/* A job every minute for a week (a run every 10 minutes, the others skipped), pruned every 10
 * minutes to its newest keep runs (those older than 30 minutes): the history stays at keep
 * runs. */
static void jobs_prune_week(struct store *st)
{
    const int keep = 50;
    int64_t max_rows = 0;
    for (int m = 0; m < 10080; m++) {
        if (m % 60 == 0) /* an hour a transaction */
            cr_assert_eq(store_begin(st), 0, "%s", store_errmsg(st));
        int64_t at = JT0 + m * JMIN;
        if (m % 10 == 0)
            jt_ended(st, "minutely", at, m % 20 ? "succeeded" : "failed");
        else
            jt_add(st, "minutely", at, 1, "schedule", "skipped", NULL, 0);
        if (m % 10 == 9)
            jt_prune(st, "minutely", keep, at - 30 * JMIN, 0);
        if (m % 60 == 59) {
            cr_assert_eq(store_commit(st), 0, "%s", store_errmsg(st));
            int64_t n = jt_rows(st);
            if (n > max_rows)
                max_rows = n;
        }
    }
    cr_expect_eq(jt_rows(st), keep);
    cr_expect_eq(max_rows, keep, "flat from the first hour on");
    struct job_run_filter f = {.job = "minutely", .limit = 1000};
    struct job_run *v;
    size_t n;
    cr_assert_eq(store_job_runs_list(st, &f, &v, &n), 0);
    cr_assert_eq(n, (size_t)keep);
    cr_expect_eq(v[0].scheduled_ms, JT0 + 10079 * JMIN, "the newest kept");
    cr_expect_eq(v[keep - 1].scheduled_ms, JT0 + (10080 - keep) * JMIN);
    job_runs_free(v, n);
}

/* ---- the history walk --------------------------------------------------------------------- */

static void jt_expect_ids(struct store *st, const struct job_run_filter *f, const int64_t *want,
                          size_t nwant, const char *what)
{
    struct job_run *v;
    size_t n;
    cr_assert_eq(store_job_runs_list(st, f, &v, &n), 0, "%s: %s", what, store_errmsg(st));
    cr_expect_eq(n, nwant, "%s: %zu runs, want %zu", what, n, nwant);
    for (size_t i = 0; i < n && i < nwant; i++)
        cr_expect_eq(v[i].id, want[i], "%s: [%zu] = %lld, want %lld", what, i, (long long)v[i].id,
                     (long long)want[i]);
    job_runs_free(v, n);
}

static void jobs_list(struct store *st)
{
    int64_t a1 = jt_ended(st, "a", JT0, "succeeded");
    int64_t b1 = jt_ended(st, "b", JT0, "failed");
    int64_t a2 = jt_add(st, "a", JT0 + JMIN, 1, "schedule", "skipped", NULL, 0);
    int64_t a3 = jt_add(st, "a", JT0 + 2 * JMIN, 1, "manual", "queued", "k", 0);
    int64_t a4 = jt_ended(st, "a", JT0 + 3 * JMIN, "failed");
    int64_t b2 = jt_add(st, "b", JT0 + 3 * JMIN, 2, "retry", "queued", NULL, 0);

    struct job_run_filter f = {0};
    jt_expect_ids(st, &f, (int64_t[]){b2, a4, a3, a2, b1, a1}, 6, "all, newest first");
    f = (struct job_run_filter){.job = "a"};
    jt_expect_ids(st, &f, (int64_t[]){a4, a3, a2, a1}, 4, "a job");
    f = (struct job_run_filter){.state = "failed"};
    jt_expect_ids(st, &f, (int64_t[]){a4, b1}, 2, "a state");
    f = (struct job_run_filter){.job = "a", .state = "failed"};
    jt_expect_ids(st, &f, (int64_t[]){a4}, 1, "job and state");
    f = (struct job_run_filter){.trigger = "manual"};
    jt_expect_ids(st, &f, (int64_t[]){a3}, 1, "a trigger");
    f = (struct job_run_filter){.job = "b", .trigger = "retry", .state = "queued"};
    jt_expect_ids(st, &f, (int64_t[]){b2}, 1, "all three");
    f = (struct job_run_filter){.job = "c"};
    jt_expect_ids(st, &f, NULL, 0, "no such job");

    /* keyset pages of 2 through job a */
    f = (struct job_run_filter){.job = "a", .limit = 2};
    jt_expect_ids(st, &f, (int64_t[]){a4, a3}, 2, "page 1");
    f.before_id = a3;
    jt_expect_ids(st, &f, (int64_t[]){a2, a1}, 2, "page 2");
    f.before_id = a1;
    jt_expect_ids(st, &f, NULL, 0, "page 3: the end");
    f = (struct job_run_filter){.before_id = a4, .limit = 3};
    jt_expect_ids(st, &f, (int64_t[]){a3, a2, b1}, 3, "all jobs, after a cursor");

    /* the active run of a job */
    struct job_run r;
    cr_assert_eq(store_job_runs_active(st, "a", &r), 0, "%s", store_errmsg(st));
    cr_expect_eq(r.id, a3);
    job_run_release(&r);
    cr_assert_eq(store_job_runs_active(st, "b", &r), 0);
    cr_expect_eq(r.id, b2);
    job_run_release(&r);
    cr_assert_eq(store_job_run_start(st, b2, "n1", JT0 + 9 * JMIN, JT0 + 4 * JMIN), 0);
    cr_assert_eq(store_job_runs_active(st, "b", &r), 0);
    cr_expect_eq(r.id, b2, "running counts too");
    cr_expect_str_eq(r.state, "running");
    job_run_release(&r);
    cr_assert_eq(store_job_run_finish(st, b2, "n1", "succeeded", 0, NULL, JT0 + 5 * JMIN), 0);
    cr_expect_eq(store_job_runs_active(st, "b", &r), 1, "none once it ended");
    cr_expect_eq(store_job_runs_active(st, "c", &r), 1);
}

/* ---- the last run, the last success, the failure streak ------------------------------------ */

static void jobs_last(struct store *st)
{
    struct job_last l;
    cr_expect_eq(store_job_last(st, "refresh", &l), 1, "no run yet");
    cr_expect_eq(l.last.id, 0);

    jt_ended(st, "refresh", JT0, "failed");
    cr_assert_eq(store_job_last(st, "refresh", &l), 0, "%s", store_errmsg(st));
    cr_expect_eq(l.last_success_ms, 0, "never succeeded");
    cr_expect_eq(l.failures, 1);
    job_run_release(&l.last);

    jt_ended(st, "refresh", JT0 + JMIN, "succeeded");
    int64_t f1 = jt_ended(st, "refresh", JT0 + 2 * JMIN, "failed");
    jt_add(st, "refresh", JT0 + 3 * JMIN, 1, "schedule", "skipped", NULL, 0);
    jt_ended(st, "refresh", JT0 + 4 * JMIN, "failed");
    int64_t c = jt_ended(st, "refresh", JT0 + 5 * JMIN, "canceled");
    jt_ended(st, "other", JT0 + 6 * JMIN, "failed");
    cr_assert_eq(store_job_last(st, "refresh", &l), 0, "%s", store_errmsg(st));
    cr_expect_eq(l.last.id, c, "the newest run, whatever its state");
    cr_expect_str_eq(l.last.state, "canceled");
    cr_expect_eq(l.last_success_ms, JT0 + JMIN + 1000);
    cr_expect_eq(l.failures, 2, "skipped and canceled neither count nor break the streak");
    job_run_release(&l.last);
    (void)f1;

    jt_ended(st, "refresh", JT0 + 7 * JMIN, "succeeded");
    int64_t q = jt_add(st, "refresh", JT0 + 8 * JMIN, 1, "schedule", "queued", NULL, 0);
    cr_assert_eq(store_job_last(st, "refresh", &l), 0);
    cr_expect_eq(l.last.id, q);
    cr_expect_eq(l.last_success_ms, JT0 + 7 * JMIN + 1000);
    cr_expect_eq(l.failures, 0);
    job_run_release(&l.last);
}

/* ---- the job's state ---------------------------------------------------------------------- */

static void jobs_state(struct store *st)
{
    struct job_state s;
    cr_expect_eq(store_job_state_get(st, "refresh", &s), 1, "none yet");
    struct job_state put = {.job = "refresh",
                            .paused = 0,
                            .last_due_ms = JT0,
                            .cron = "*/5 * * * *",
                            .updated_ms = JT0 + 1};
    cr_assert_eq(store_job_state_put(st, &put), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_job_state_get(st, "refresh", &s), 0, "%s", store_errmsg(st));
    cr_expect_str_eq(s.job, "refresh");
    cr_expect_eq(s.paused, 0);
    cr_expect_eq(s.last_due_ms, JT0);
    cr_expect_str_eq(s.cron, "*/5 * * * *");
    cr_expect_eq(s.updated_ms, JT0 + 1);
    job_state_release(&s);

    put = (struct job_state){
        .job = "refresh", .paused = 1, .last_due_ms = JT0 + 5 * JMIN, .updated_ms = JT0 + 2};
    cr_assert_eq(store_job_state_put(st, &put), 0, "%s", store_errmsg(st));
    cr_assert_eq(store_job_state_get(st, "refresh", &s), 0);
    cr_expect_eq(s.paused, 1);
    cr_expect_eq(s.last_due_ms, JT0 + 5 * JMIN);
    cr_expect_null(s.cron);
    cr_expect_eq(s.updated_ms, JT0 + 2);
    job_state_release(&s);
    cr_expect_eq(store_job_state_get(st, "other", &s), 1);
}

/* ---- what `sluice migrate` copies ----------------------------------------------------------- */

struct jt_dump {
    int rows;
    int trigger_col;
    char first_trigger[16];
};

static int jt_dump_row(void *arg, const struct cell *row)
{
    struct jt_dump *d = arg;
    if (d->rows++ == 0 && row[d->trigger_col].type == CELL_TEXT)
        snprintf(d->first_trigger, sizeof d->first_trigger, "%.*s", (int)row[d->trigger_col].n,
                 row[d->trigger_col].p);
    return 0;
}

static void jobs_tables(struct store *st)
{
    const struct table_def *runs = jt_table("job_runs"), *state = jt_table("job_state");
    cr_assert_not_null(runs, "job_runs is in store_tables");
    cr_assert_not_null(state, "job_state is in store_tables");
    cr_expect_eq(runs->cols[0].flags, COL_KEY | COL_SERIAL, "the run id is serial");
    cr_expect_eq(table_col_index(runs, "cancel_requested") >= 0, 1);
    jt_add(st, "a", JT0, 1, "manual", "queued", "k1", 0);
    jt_ended(st, "a", JT0 + JMIN, "succeeded");
    struct job_state put = {.job = "a", .last_due_ms = JT0, .cron = "* * * * *", .updated_ms = 1};
    cr_assert_eq(store_job_state_put(st, &put), 0);

    struct jt_dump d = {.trigger_col = table_col_index(runs, "trigger")};
    cr_assert_eq(store_table_dump(st, runs, jt_dump_row, &d), 0, "%s", store_errmsg(st));
    cr_expect_eq(d.rows, 2);
    cr_expect_str_eq(d.first_trigger, "manual", "in id order");
    int64_t n = 0;
    cr_assert_eq(store_table_count(st, state, &n), 0, "%s", store_errmsg(st));
    cr_expect_eq(n, 1);
    d = (struct jt_dump){.trigger_col = 0};
    cr_assert_eq(store_table_dump(st, state, jt_dump_row, &d), 0, "%s", store_errmsg(st));
    cr_expect_eq(d.rows, 1);
}

#endif
