/*
 * test_sched_due.c - the scheduler's catch-up rules (src/sched/due.h): which scheduled times
 * of a job sched_due() runs at a tick and how (regular "schedule" or "catchup"), for the
 * policies none / latest / all, max_catchup_runs, catchup_window and grace; a full out (the
 * rest left for the next call, never dropped); a clock set back;
 * New York's 2026 DST days ticked as the scheduler ticks; and that every job kind named by
 * config.h's config_job_kind_names has a row in src/sched/kinds.c (kind_known).
 *
 * Each job is loaded by config_load() from a small YAML file, so every field not written has
 * its default (grace 1m, max_catchup_runs 10, no catchup_window). Scheduled times are written
 * literally (RFC 3339 UTC); New York's are worked out from `zdump -v America/New_York`:
 *   2026-03-08T07:00:00Z  01:59:59 EST -> 03:00 EDT (02:00-02:59 does not exist)
 *   2026-11-01T06:00:00Z  01:59:59 EDT -> 01:00 EST (01:00-01:59 occurs twice)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "cron/tz.h"
#include "sched/due.h"
#include "sched/kinds.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* "2026-03-15T10:00:00Z" -> ms since the epoch. */
static int64_t at(const char *s)
{
    int y, mo, d, h, mi, se;
    cr_assert_eq(sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se), 6, "bad time %s", s);
    return (tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) * SEC;
}

/* ms since the epoch -> "2026-03-15T10:00:00.000Z" in buf. */
static const char *iso(int64_t ms, char buf[40])
{
    if (ms < 0) {
        snprintf(buf, 40, "(none: %lld)", (long long)ms);
        return buf;
    }
    int64_t t = ms / SEC, days = t / 86400, sec = t % 86400, y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    snprintf(buf, 40, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(sec / 3600), (int)(sec % 3600 / 60), (int)(sec % 60), (int)(ms % SEC));
    return buf;
}

/* The configuration of the running test (each Test is a process of its own). */
static struct sluice_config cfg;
static int loaded;

static void release(void)
{
    if (loaded)
        config_release(&cfg);
    loaded = 0;
}

TestSuite(sched_due, .fini = release);

/* The job of a configuration with one job: name t, kind noop, and fields (YAML lines of the
 * job's mapping, each indented by four blanks), every other field defaulted. */
static const struct job_config *job(const char *fields)
{
    char text[1024], path[] = "/tmp/sluice-test-sched-due-XXXXXX.yaml", err[512] = "";
    int len = snprintf(text, sizeof text, "jobs:\n  - name: t\n    kind: noop\n%s", fields);
    cr_assert(len > 0 && (size_t)len < sizeof text);
    int fd = mkstemps(path, 5);
    cr_assert_geq(fd, 0, "mkstemps failed");
    cr_assert_eq(write(fd, text, (size_t)len), (ssize_t)len);
    close(fd);
    int rc = config_load(path, &cfg, err, sizeof err);
    unlink(path);
    cr_assert_eq(rc, 0, "config_load:\n%s\n%s", text, err);
    loaded = 1;
    cr_assert_eq(cfg.njobs, 1);
    return &cfg.jobs[0];
}

/* One run sched_due() should return. */
struct want {
    const char *at; /* RFC 3339 UTC */
    int catchup;
};
#define RUNS(...)                                                                                  \
    (const struct want[]){__VA_ARGS__},                                                            \
        sizeof((const struct want[]){__VA_ARGS__}) / sizeof(struct want)
#define NO_RUNS NULL, 0

/* sched_due(j, last, now) with room for cap (<= 64) returns exactly the runs w[0..nw) (in
 * order), sets the new last_due to want_last and missed to want_missed. */
static void check_cap(const struct job_config *j, size_t cap, int64_t last, int64_t now,
                      int64_t want_last, int64_t want_missed, const struct want *w, size_t nw)
{
    struct due_run out[64];
    int64_t new_last = -2, missed = -2;
    char b1[40], b2[40], b3[40];
    cr_assert_leq(cap, 64);
    size_t n = sched_due(j, last, now, out, cap, &new_last, &missed);
    cr_expect_eq(n, nw, "last_due %s, now %s: %zu runs, want %zu", iso(last, b1), iso(now, b2), n,
                 nw);
    for (size_t k = 0; k < n && k < nw; k++) {
        cr_expect_eq(out[k].at_ms, at(w[k].at), "run %zu: at %s, want %s", k + 1,
                     iso(out[k].at_ms, b1), w[k].at);
        cr_expect_eq(out[k].catchup, w[k].catchup, "run %zu at %s: catchup %d, want %d", k + 1,
                     iso(out[k].at_ms, b1), out[k].catchup, w[k].catchup);
    }
    cr_expect_eq(new_last, want_last, "new last_due %s, want %s", iso(new_last, b1),
                 iso(want_last, b3));
    cr_expect_eq(missed, want_missed, "missed %lld, want %lld", (long long)missed,
                 (long long)want_missed);
}

static void check(const struct job_config *j, int64_t last, int64_t now, int64_t want_last,
                  int64_t want_missed, const struct want *w, size_t nw)
{
    check_cap(j, 64, last, now, want_last, want_missed, w, nw);
}

Test(sched_due, defaults_from_the_config)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n");
    cr_expect_eq(j->catchup, JOB_CATCHUP_LATEST);
    cr_expect_eq(j->max_catchup_runs, 10);
    cr_expect_eq(j->catchup_window_ms, 0);
    cr_expect_eq(j->grace_ms, 60000);
}

Test(sched_due, hourly_on_time)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n");
    int64_t ten = at("2026-03-15T10:00:00Z");
    /* 10:00 was dealt with: nothing new until 11:00 */
    check(j, ten, at("2026-03-15T10:00:30Z"), ten, 0, NO_RUNS);
    check(j, ten, at("2026-03-15T10:59:59Z"), ten, 0, NO_RUNS);
    /* 11:00 seen 20 s late, within the grace (1m): a regular run */
    check(j, ten, at("2026-03-15T11:00:20Z"), at("2026-03-15T11:00:00Z"), 0,
          RUNS({"2026-03-15T11:00:00Z", 0}));
    /* exactly at 11:00 */
    check(j, ten, at("2026-03-15T11:00:00Z"), at("2026-03-15T11:00:00Z"), 0,
          RUNS({"2026-03-15T11:00:00Z", 0}));
}

Test(sched_due, grace_boundary)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    catchup: all\n");
    int64_t ten = at("2026-03-15T10:00:00Z"), eleven = at("2026-03-15T11:00:00Z");
    /* as old as the grace (60 s): still on time */
    check(j, ten, eleven + MIN, eleven, 0, RUNS({"2026-03-15T11:00:00Z", 0}));
    /* a millisecond older: missed, made up by the policy */
    check(j, ten, eleven + MIN + 1, eleven, 1, RUNS({"2026-03-15T11:00:00Z", 1}));
    /* with catchup none, a missed time is not run at all, but still dealt with */
    release();
    j = job("    cron: \"0 * * * *\"\n    catchup: none\n");
    check(j, ten, eleven + MIN + 1, eleven, 1, NO_RUNS);
}

/* The downtime of the cases below: last_due 10:00, now 13:05; 11:00, 12:00 and 13:00 are
 * all older than the grace, so missed (3), and 13:00 is the new last_due. */
static void after_downtime(const struct job_config *j, const struct want *w, size_t nw)
{
    check(j, at("2026-03-15T10:00:00Z"), at("2026-03-15T13:05:00Z"), at("2026-03-15T13:00:00Z"), 3,
          w, nw);
}

Test(sched_due, downtime_none)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    catchup: none\n");
    after_downtime(j, NO_RUNS);
}

Test(sched_due, downtime_latest)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    catchup: latest\n");
    after_downtime(j, RUNS({"2026-03-15T13:00:00Z", 1}));
}

Test(sched_due, downtime_all)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    catchup: all\n");
    after_downtime(j, RUNS({"2026-03-15T11:00:00Z", 1}, {"2026-03-15T12:00:00Z", 1},
                           {"2026-03-15T13:00:00Z", 1}));
}

Test(sched_due, downtime_all_capped)
{
    const struct job_config *j =
        job("    cron: \"0 * * * *\"\n    catchup: all\n    max_catchup_runs: 2\n");
    /* the latest two of the three missed times */
    after_downtime(j, RUNS({"2026-03-15T12:00:00Z", 1}, {"2026-03-15T13:00:00Z", 1}));
}

Test(sched_due, downtime_all_window)
{
    const struct job_config *j =
        job("    cron: \"0 * * * *\"\n    catchup: all\n    catchup_window: 90m\n");
    /* only the missed times since 11:35 count: 12:00 and 13:00; 11:00 is still missed */
    after_downtime(j, RUNS({"2026-03-15T12:00:00Z", 1}, {"2026-03-15T13:00:00Z", 1}));
    /* latest, with a window that excludes every missed time: nothing made up */
    release();
    j = job("    cron: \"0 * * * *\"\n    catchup: latest\n    catchup_window: 4m\n");
    after_downtime(j, NO_RUNS);
}

Test(sched_due, missed_and_on_time_at_one_tick)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    catchup: latest\n");
    /* 11:00 and 12:00 were missed (latest: 12:00 made up), 13:00 is 30 s old: on time */
    check(j, at("2026-03-15T10:00:00Z"), at("2026-03-15T13:00:30Z"), at("2026-03-15T13:00:00Z"), 2,
          RUNS({"2026-03-15T12:00:00Z", 1}, {"2026-03-15T13:00:00Z", 0}));
    release();
    j = job("    cron: \"0 * * * *\"\n    catchup: all\n");
    check(j, at("2026-03-15T10:00:00Z"), at("2026-03-15T13:00:30Z"), at("2026-03-15T13:00:00Z"), 2,
          RUNS({"2026-03-15T11:00:00Z", 1}, {"2026-03-15T12:00:00Z", 1},
               {"2026-03-15T13:00:00Z", 0}));
}

Test(sched_due, several_on_time_within_a_long_grace)
{
    const struct job_config *j =
        job("    cron: \"* * * * *\"\n    grace: 10m\n    catchup: none\n");
    /* every time of the last 10 minutes is on time, none is missed */
    check(j, at("2026-03-15T10:00:00Z"), at("2026-03-15T10:03:30Z"), at("2026-03-15T10:03:00Z"), 0,
          RUNS({"2026-03-15T10:01:00Z", 0}, {"2026-03-15T10:02:00Z", 0},
               {"2026-03-15T10:03:00Z", 0}));
}

Test(sched_due, out_full_leaves_the_rest_for_the_next_call)
{
    const struct job_config *j =
        job("    cron: \"* * * * *\"\n    grace: 10m\n    catchup: all\n    max_catchup_runs: 1\n");
    /* 8 times on time, room for 5 (max_catchup_runs + 4, as sched.c asks): the first 5 now,
     * last_due stops at the last one returned, and the next call runs the other 3 */
    check_cap(
        j, 5, at("2026-03-15T10:00:00Z"), at("2026-03-15T10:08:30Z"), at("2026-03-15T10:05:00Z"), 0,
        RUNS({"2026-03-15T10:01:00Z", 0}, {"2026-03-15T10:02:00Z", 0}, {"2026-03-15T10:03:00Z", 0},
             {"2026-03-15T10:04:00Z", 0}, {"2026-03-15T10:05:00Z", 0}));
    check_cap(j, 5, at("2026-03-15T10:05:00Z"), at("2026-03-15T10:08:40Z"),
              at("2026-03-15T10:08:00Z"), 0,
              RUNS({"2026-03-15T10:06:00Z", 0}, {"2026-03-15T10:07:00Z", 0},
                   {"2026-03-15T10:08:00Z", 0}));
    /* no room at all: nothing dealt with */
    check_cap(j, 0, at("2026-03-15T10:00:00Z"), at("2026-03-15T10:08:30Z"),
              at("2026-03-15T10:00:00Z"), 0, NO_RUNS);
}

Test(sched_due, clock_set_back)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    catchup: all\n");
    int64_t thirteen = at("2026-03-15T13:00:00Z");
    /* the host's clock goes back an hour: nothing, and last_due stays */
    check(j, thirteen, at("2026-03-15T12:00:00Z"), thirteen, 0, NO_RUNS);
    check(j, thirteen, at("2026-03-15T12:00:30Z"), thirteen, 0, NO_RUNS);
    /* back where it was: 13:00 was dealt with, it is not run twice */
    check(j, thirteen, at("2026-03-15T13:00:20Z"), thirteen, 0, NO_RUNS);
    /* then the next time runs as usual */
    check(j, thirteen, at("2026-03-15T14:00:10Z"), at("2026-03-15T14:00:00Z"), 0,
          RUNS({"2026-03-15T14:00:00Z", 0}));
}

/* How long sched_due takes, in seconds. */
static double timed_due(const struct job_config *j, int64_t last, int64_t now, struct due_run *out,
                        size_t cap, size_t *n, int64_t *new_last, int64_t *missed)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    *n = sched_due(j, last, now, out, cap, new_last, missed);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static struct due_run big[10001 + 8];

Test(sched_due, week_of_downtime_never_above_the_cap)
{
    const struct job_config *j = job("    cron: \"* * * * *\"\n    catchup: all\n");
    int64_t t0 = at("2026-03-15T10:00:00Z"), end = t0 + 7 * DAY, new_last, missed;
    /* 10080 times in (t0, end]: end is 30 s old (on time), the 10079 before it missed; the
     * latest 10 of those are made up */
    size_t n;
    double s = timed_due(j, t0, end + 30 * SEC, big, 11, &n, &new_last, &missed);
    cr_expect_lt(s, 2.0, "sched_due over a week of minutes took %.3f s", s);
    cr_assert_eq(n, 11);
    for (size_t k = 0; k < 10; k++) {
        cr_expect_eq(big[k].at_ms, end - (int64_t)(10 - k) * MIN, "run %zu", k + 1);
        cr_expect_eq(big[k].catchup, 1, "run %zu", k + 1);
    }
    cr_expect_eq(big[10].at_ms, end);
    cr_expect_eq(big[10].catchup, 0);
    cr_expect_eq(new_last, end);
    cr_expect_eq(missed, 10079);

    /* a smaller out than the policy needs: never written past cap, and the call ends at the
     * last run it returned (the 7 missed times after it are the next call's) */
    for (size_t k = 0; k < 8; k++)
        big[k] = (struct due_run){.at_ms = -7, .catchup = 7};
    n = sched_due(j, t0, end + 30 * SEC, big, 3, &new_last, &missed);
    cr_assert_eq(n, 3);
    for (size_t k = 0; k < 3; k++) {
        cr_expect_eq(big[k].at_ms, end - (int64_t)(10 - k) * MIN, "run %zu", k + 1);
        cr_expect_eq(big[k].catchup, 1, "run %zu", k + 1);
    }
    for (size_t k = 3; k < 8; k++)
        cr_expect(big[k].at_ms == -7 && big[k].catchup == 7, "out[%zu] written past cap 3", k);
    cr_expect_eq(new_last, end - 8 * MIN);
    cr_expect_eq(missed, 10079 - 7);
}

Test(sched_due, week_of_downtime_largest_cap)
{
    const struct job_config *j =
        job("    cron: \"* * * * *\"\n    catchup: all\n    max_catchup_runs: 10000\n");
    int64_t t0 = at("2026-03-15T10:00:00Z"), end = t0 + 7 * DAY, new_last, missed;
    size_t n;
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++)
        big[k] = (struct due_run){.at_ms = -7, .catchup = 7};
    double s = timed_due(j, t0, end + 30 * SEC, big, 10001 + 8, &n, &new_last, &missed);
    cr_expect_lt(s, 2.0, "sched_due over a week of minutes took %.3f s", s);
    /* the latest 10000 of the 10079 missed times (t0+80m .. end-1m), then end on time */
    cr_assert_eq(n, 10001);
    cr_expect_eq(big[0].at_ms, t0 + 80 * MIN);
    for (size_t k = 0; k < 10000; k++)
        if (big[k].at_ms != t0 + (int64_t)(80 + k) * MIN || big[k].catchup != 1) {
            cr_expect_fail("run %zu wrong", k + 1);
            break;
        }
    cr_expect_eq(big[10000].at_ms, end);
    cr_expect_eq(big[10000].catchup, 0);
    cr_expect_eq(big[10001].catchup, 7, "a run past the policy's 10001");
    cr_expect_eq(new_last, end);
    cr_expect_eq(missed, 10079);
}

/* Ticking job j every step ms from from (its last_due) to to, with now 10 s after each tick,
 * runs exactly the times want[0..nw), in order, each on time (none missed). */
static void ticked(const struct job_config *j, const char *from, const char *to, int64_t step,
                   const char *const *want, size_t nw)
{
    int64_t last = at(from);
    size_t ngot = 0;
    char b[40];
    for (int64_t t = last + step; t <= at(to); t += step) {
        struct due_run out[16];
        int64_t new_last, missed;
        size_t n = sched_due(j, last, t + 10 * SEC, out, 16, &new_last, &missed);
        cr_expect_eq(missed, 0, "the tick at %s missed a time", iso(t, b));
        for (size_t k = 0; k < n; k++, ngot++) {
            cr_assert_lt(ngot, nw, "a run more than %zu, at %s", nw, iso(out[k].at_ms, b));
            cr_expect_eq(out[k].at_ms, at(want[ngot]), "run %zu at %s, want %s", ngot + 1,
                         iso(out[k].at_ms, b), want[ngot]);
            cr_expect_eq(out[k].catchup, 0, "run %zu at %s made up", ngot + 1,
                         iso(out[k].at_ms, b));
        }
        last = new_last;
    }
    cr_expect_eq(ngot, nw, "%zu runs, want %zu", ngot, nw);
}
#define TICKED(j, from, to, step, ...)                                                             \
    ticked(j, from, to, step, (const char *const[]){__VA_ARGS__},                                  \
           sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

Test(sched_due, new_york_spring_forward)
{
    const struct job_config *j =
        job("    cron: \"30 2 * * *\"\n    timezone: America/New_York\n    catchup: all\n");
    /* the day, midnight EST to midnight EDT, at one tick: the one run, at the end of the gap
     * (03:00 EDT), missed and made up */
    check(j, at("2026-03-08T05:00:00Z"), at("2026-03-09T04:00:00Z"), at("2026-03-08T07:00:00Z"), 1,
          RUNS({"2026-03-08T07:00:00Z", 1}));
    /* three days ticked every minute: once a day, on time */
    TICKED(j, "2026-03-07T05:00:00Z", "2026-03-10T04:00:00Z", MIN, "2026-03-07T07:30:00Z",
           "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z");
}

Test(sched_due, new_york_fall_back)
{
    /* hourly, ticked hour by hour from 00:00 EDT: both 01:00s (EDT, then EST) run */
    const struct job_config *j = job("    cron: \"0 * * * *\"\n    timezone: America/New_York\n");
    TICKED(j, "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z", HOUR, "2026-11-01T05:00:00Z",
           "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z");
    /* a fixed hour runs at the first 01:00 (EDT) only */
    release();
    j = job("    cron: \"0 1 * * *\"\n    timezone: America/New_York\n");
    TICKED(j, "2026-11-01T04:00:00Z", "2026-11-02T04:00:00Z", HOUR, "2026-11-01T05:00:00Z");
}

Test(sched_due, next_ms)
{
    const struct job_config *j = job("    cron: \"0 * * * *\"\n");
    int64_t eleven = at("2026-03-15T11:00:00Z");
    cr_expect_eq(sched_next_ms(j, at("2026-03-15T10:00:00Z")), eleven);
    cr_expect_eq(sched_next_ms(j, eleven - 1), eleven);
    cr_expect_eq(sched_next_ms(j, eleven), eleven + HOUR);
    cr_expect_eq(sched_next_ms(j, eleven + 500), eleven + HOUR);
    cr_expect_eq(sched_next_ms(j, -1), 0, "after 1969-12-31T23:59:59.999Z: the epoch");
}

Test(sched_due, every_kind_has_a_row)
{
    size_t n = 0;
    for (const char *const *k = config_job_kind_names; *k; k++, n++)
        cr_expect_eq(kind_known(*k), 1, "kind '%s' has no row in src/sched/kinds.c", *k);
    cr_expect_geq(n, 6);
    cr_expect_eq(kind_known("no_such_kind"), 0);
}
