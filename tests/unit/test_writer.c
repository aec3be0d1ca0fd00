/*
 * test_writer.c - the writer thread and its group commit (src/writer/writer.h)
 * on a temp SQLite store. Each test job writes one DLQ entry tagged with its
 * id (ingest_id "job-N") and records its delivery; what was committed is then
 * read from the file with sqlite3 directly. A "blocker" job, whose apply()
 * waits until the test releases it, lets the tests fill the queue while the
 * writer is busy, so grouping and queue bounds are deterministic.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "writer/writer.h"
#include "store/sqlite/sqlite_internal.h" /* sqlite_exec: a real store fault inside a job */
#include "store/store.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define WAIT_S 30 /* longest wait for deliveries before failing */

/* ---- fixture ----------------------------------------------------------------------- */

static char dir[64], db_path[128], uri[160];
static struct writer *w;

static void setup(void)
{
    char err[256] = "";
    /* A hung writer fails the test (SIGALRM) instead of blocking `make unit`.
     * (Criterion's own .timeout leaks memory in the runner under --jobs 2.) */
    alarm(120);
    snprintf(dir, sizeof dir, "/tmp/sluice-writer-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", db_path);
    struct store *st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_assert_eq(store_migrate(st), 0, "%s", store_errmsg(st));
    store_close(st);
}

static void teardown(void)
{
    writer_stop(w);
    w = NULL;
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void start(int queue_max_jobs, int max_group_rows)
{
    char err[256] = "";
    w = writer_start(uri, queue_max_jobs, max_group_rows, err, sizeof err);
    cr_assert_not_null(w, "writer_start: %s", err);
}

/* ---- jobs ------------------------------------------------------------------------------ */

struct tjob {
    struct wjob job; /* first: the writer hands back &job */
    int id;
    int fail;      /* apply() writes, then returns -1 */
    int blocker;   /* apply() waits for release_blocker() first */
    int again;     /* apply() writes, then returns WJOB_AGAIN this many times */
    int runs;      /* times apply() ran */
    int delivered; /* times deliver() ran */
    int skipped;   /* times skip() ran */
    int result;
    unsigned long long commits_at_delivery; /* which group it was in */
    int readonly; /* apply() writes on a read-only connection (SQLITE_READONLY: a fault) */
    int conflict; /* apply() breaks a primary key (SQLITE_CONSTRAINT: the data's) */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ndelivered, blocker_started, blocker_released;
static int apply_errors; /* store errors seen inside apply(), checked by the tests */

static int t_apply(struct wjob *job, struct store *st)
{
    struct tjob *t = (struct tjob *)job;
    if (t->conflict) /* schema_migrations' version 1 is there since the migration */
        return sqlite_exec(SQ(st), "INSERT INTO schema_migrations VALUES (1, 0)") < 0 ? -1 : 0;
    if (t->readonly) {
        cr_assert_eq(sqlite_exec(SQ(st), "PRAGMA query_only = 1"), 0);
        struct dlq_new e = {.dataset = "w",
                            .ingest_id = "ro",
                            .source = "test",
                            .payload = "{}",
                            .payload_len = 2,
                            .errors_json = "[]",
                            .codes = ",",
                            .received_ms = 1};
        int rc = store_dlq_add(st, &e, NULL);
        int fault = store_fault(st);
        cr_assert_eq(sqlite_exec(SQ(st), "PRAGMA query_only = 0"), 0);
        cr_assert_eq(store_fault(st), fault, "a later success does not forget the class");
        return rc;
    }
    if (t->blocker) {
        pthread_mutex_lock(&mu);
        blocker_started = 1;
        pthread_cond_broadcast(&cv);
        while (!blocker_released)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    char tag[32];
    snprintf(tag, sizeof tag, "job-%d", t->id);
    struct dlq_new e = {.dataset = "w",
                        .ingest_id = tag,
                        .source = "test",
                        .row = t->id,
                        .payload = "{}",
                        .payload_len = 2,
                        .errors_json = "[]",
                        .codes = ",",
                        .received_ms = 1};
    if (store_dlq_add(st, &e, NULL) < 0) {
        pthread_mutex_lock(&mu);
        apply_errors++;
        pthread_mutex_unlock(&mu);
        return -1;
    }
    t->runs++;
    if (t->again && t->again-- > 0)
        return WJOB_AGAIN;
    return t->fail ? -1 : 0;
}

static void t_deliver(struct wjob *job, int result)
{
    struct tjob *t = (struct tjob *)job;
    unsigned long long c = writer_commits(w);
    pthread_mutex_lock(&mu);
    t->delivered++;
    t->result = result;
    t->commits_at_delivery = c;
    ndelivered++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void t_skip(struct wjob *job)
{
    struct tjob *t = (struct tjob *)job;
    pthread_mutex_lock(&mu);
    t->skipped++;
    pthread_mutex_unlock(&mu);
}

static void init_job(struct tjob *t, int id)
{
    memset(t, 0, sizeof *t);
    t->id = id;
    t->job.nrows = 1;
    t->job.apply = t_apply;
    t->job.deliver = t_deliver;
    t->job.skip = t_skip;
    t->result = 12345;
}

static struct tjob *new_jobs(size_t n, int first_id)
{
    struct tjob *v = calloc(n, sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++)
        init_job(&v[i], first_id + (int)i);
    return v;
}

static int delivered_count(void)
{
    pthread_mutex_lock(&mu);
    int n = ndelivered;
    pthread_mutex_unlock(&mu);
    return n;
}

/* Wait until n jobs in all were delivered; fails the test after WAIT_S seconds. */
static void wait_delivered(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (ndelivered < n && rc == 0)
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    int got = ndelivered;
    pthread_mutex_unlock(&mu);
    cr_assert_geq(got, n, "only %d of %d jobs delivered after %ds", got, n, WAIT_S);
}

/* Submit a blocker job and wait until the writer is inside its apply(). */
static void submit_blocker(struct tjob *b, int id)
{
    init_job(b, id);
    b->blocker = 1;
    cr_assert_eq(writer_submit(w, &b->job), 0);
    pthread_mutex_lock(&mu);
    while (!blocker_started)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void release_blocker(void)
{
    pthread_mutex_lock(&mu);
    blocker_released = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- reading the file ------------------------------------------------------------------ */

static int64_t raw_int(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -999;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* How many rows job id wrote (0 or 1). */
static int64_t rows_of(int id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM dlq WHERE ingest_id = 'job-%d'", id);
    return raw_int(sql);
}

/* ---- many threads ---------------------------------------------------------------------- */

#define NTHREADS 4
#define PER_THREAD 50

struct submitter {
    struct tjob *jobs;
    int n, refused;
};

static void *submit_all(void *arg)
{
    struct submitter *s = arg;
    for (int i = 0; i < s->n; i++)
        if (writer_submit(w, &s->jobs[i].job) != 0)
            s->refused++;
    return NULL;
}

Test(writer, jobs_from_many_threads_all_delivered, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob *jobs = new_jobs(NTHREADS * PER_THREAD, 0);
    pthread_t th[NTHREADS];
    struct submitter sub[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        sub[i] = (struct submitter){.jobs = jobs + i * PER_THREAD, .n = PER_THREAD};
        cr_assert_eq(pthread_create(&th[i], NULL, submit_all, &sub[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(sub[i].refused, 0, "thread %d: %d submits refused", i, sub[i].refused);
    }
    wait_delivered(NTHREADS * PER_THREAD);
    for (int i = 0; i < NTHREADS * PER_THREAD; i++) {
        cr_expect_eq(jobs[i].delivered, 1, "job %d delivered %d times", i, jobs[i].delivered);
        cr_expect_eq(jobs[i].result, 0, "job %d: result %d", i, jobs[i].result);
        cr_expect_eq(jobs[i].job.applied, 0, "job %d: applied %d", i, jobs[i].job.applied);
    }
    cr_expect_eq(apply_errors, 0);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), NTHREADS * PER_THREAD);
    cr_expect_eq(raw_int("SELECT count(DISTINCT ingest_id) FROM dlq"), NTHREADS * PER_THREAD);
    cr_expect(writer_healthy(w));
    cr_expect_eq(writer_queue_depth(w), 0);
    free(jobs);
}

/* ---- group commit ----------------------------------------------------------------------- */

Test(writer, group_commit_groups_a_burst, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob *jobs = new_jobs(200, 0);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(writer_submit(w, &jobs[i].job), 0, "submit %d", i);
    wait_delivered(200);
    unsigned long long c = writer_commits(w);
    cr_expect_lt(c, 200, "%llu commits for 200 jobs: no grouping", c);
    cr_expect_geq(c, 1);
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 200);
    free(jobs);
}

Test(writer, queued_jobs_commit_as_one_group, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob blocker;
    submit_blocker(&blocker, 1000);
    struct tjob *jobs = new_jobs(200, 0);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(writer_submit(w, &jobs[i].job), 0, "submit %d", i);
    cr_expect_eq(writer_queue_depth(w), 200);
    cr_expect_eq(writer_commits(w), 0);
    cr_expect_eq(delivered_count(), 0, "nothing is delivered before its commit");
    release_blocker();
    wait_delivered(201);

    /* the blocker's own group, then all 200 in one */
    cr_expect_eq(writer_commits(w), 2);
    cr_expect_eq(blocker.result, 0);
    cr_expect_eq(blocker.commits_at_delivery, 1);
    for (int i = 0; i < 200; i++) {
        cr_expect_eq(jobs[i].result, 0, "job %d", i);
        cr_expect_eq(jobs[i].commits_at_delivery, 2, "job %d delivered after commit %llu", i,
                     jobs[i].commits_at_delivery);
    }
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 201);
    free(jobs);
}

Test(writer, group_size_bounded_by_max_group_rows, .init = setup, .fini = teardown)
{
    start(1024, 50);
    struct tjob blocker;
    submit_blocker(&blocker, 1000);
    /* 30 small jobs, one job of 120 rows (more than a group), 30 small jobs */
    struct tjob *jobs = new_jobs(61, 0);
    jobs[30].job.nrows = 120;
    for (int i = 0; i < 61; i++)
        cr_assert_eq(writer_submit(w, &jobs[i].job), 0, "submit %d", i);
    release_blocker();
    wait_delivered(62);

    /* groups: blocker | 30 | the big one alone | 30 */
    cr_expect_eq(writer_commits(w), 4);
    for (int i = 0; i < 61; i++) {
        unsigned long long want = i < 30 ? 2 : i == 30 ? 3 : 4;
        cr_expect_eq(jobs[i].result, 0, "job %d", i);
        cr_expect_eq(jobs[i].commits_at_delivery, want, "job %d in group %llu, expected %llu", i,
                     jobs[i].commits_at_delivery, want);
    }
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 62);
    free(jobs);
}

/* ---- failures ------------------------------------------------------------------------- */

/* Run jobs[0..n) as one group: they queue behind a blocker job, then go together. */
static void run_as_one_group(struct tjob *jobs, int n)
{
    static struct tjob blocker;
    submit_blocker(&blocker, 1000);
    for (int i = 0; i < n; i++)
        cr_assert_eq(writer_submit(w, &jobs[i].job), 0);
    release_blocker();
    wait_delivered(n + 1);
}

Test(writer, failed_job_rolled_back_others_commit, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob *jobs = new_jobs(5, 0);
    jobs[1].fail = 1;
    jobs[3].fail = 1;
    run_as_one_group(jobs, 5);

    for (int i = 0; i < 5; i++) {
        int bad = jobs[i].fail;
        cr_expect_eq(jobs[i].delivered, 1, "job %d", i);
        cr_expect_eq(jobs[i].result, bad ? -1 : 0, "job %d: result %d", i, jobs[i].result);
        cr_expect_eq(jobs[i].job.applied, bad ? -1 : 0, "job %d: applied %d", i,
                     jobs[i].job.applied);
        cr_expect_eq(rows_of(i), bad ? 0 : 1, "job %d: %lld rows", i, (long long)rows_of(i));
        cr_expect_eq(jobs[i].commits_at_delivery, 2, "job %d not in the same group", i);
    }
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 4); /* blocker + 3 good jobs */
    cr_expect(writer_healthy(w), "a job that fails is not a store failure");
    free(jobs);
}

Test(writer, lone_failed_job_rolled_back, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob bad, good;
    init_job(&bad, 1);
    bad.fail = 1;
    bad.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &bad.job), -1);
    cr_expect_eq(rows_of(1), 0, "the failed job's write was kept");

    init_job(&good, 2);
    good.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &good.job), 0);
    cr_expect_eq(rows_of(2), 1);
    cr_expect(writer_healthy(w));
}

/* A job that asks to run again (an idempotency key another node committed meanwhile) has
 * its first run's writes undone and runs once more; asking twice fails it alone. */
Test(writer, a_job_asking_to_run_again_is_undone_and_run_once_more, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob *jobs = new_jobs(4, 0);
    jobs[0].again = 1;
    jobs[1].again = 2;
    jobs[3].again = 1;
    run_as_one_group(jobs, 4);
    const int runs[4] = {2, 2, 1, 2}, result[4] = {0, -1, 0, 0};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(jobs[i].runs, runs[i], "job %d ran %d times", i, jobs[i].runs);
        cr_expect_eq(jobs[i].result, result[i], "job %d: result %d", i, jobs[i].result);
        cr_expect_eq(rows_of(i), result[i] ? 0 : 1, "job %d: %lld rows (a first run's kept?)", i,
                     (long long)rows_of(i));
        cr_expect_eq(jobs[i].commits_at_delivery, 2, "job %d not in the same group", i);
    }
    free(jobs);

    struct tjob lone; /* a lone job runs without a savepoint: its transaction is begun again */
    init_job(&lone, 7);
    lone.again = 1;
    lone.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &lone.job), 0);
    cr_expect_eq(lone.runs, 2);
    cr_expect_eq(rows_of(7), 1);
    cr_expect(writer_healthy(w));
}

/* ---- the store away ------------------------------------------------------------------------ */

/* SQLite's ping fails while its file is not where it was opened: the writer's view of a
 * database that went away, and came back when the file is put back. */
Test(writer, store_away_refuses_jobs_then_recovers_by_itself, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    char away[160];
    snprintf(away, sizeof away, "%s.away", db_path);
    cr_assert_eq(rename(db_path, away), 0);

    struct tjob bad, refused;
    init_job(&bad, 1);
    bad.fail = 1; /* a failed job makes the writer look at the store */
    cr_assert_eq(writer_submit(w, &bad.job), 0);
    wait_delivered(1);
    cr_expect_eq(bad.result, -1);
    cr_expect_not(writer_healthy(w), "the store does not answer: not healthy");

    init_job(&refused, 2);
    cr_assert_eq(writer_submit(w, &refused.job), 0);
    wait_delivered(2);
    cr_expect_eq(refused.result, -1, "a job while the store is away is refused");
    cr_expect_eq(refused.skipped, 1, "skip() tells the job it will not be applied");
    cr_expect_eq(bad.skipped, 0, "an applied job is not skipped");

    cr_assert_eq(rename(away, db_path), 0);
    /* back without any job to run: the writer tries again by itself (at most 2 s apart) */
    for (int i = 0; i < 100 && !writer_healthy(w); i++)
        usleep(50 * 1000);
    cr_assert(writer_healthy(w), "the writer did not notice that the store is back");

    struct tjob good;
    init_job(&good, 3);
    good.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &good.job), 0);
    cr_expect_eq(rows_of(1) + rows_of(2), 0, "nothing of the failed or refused job is stored");
    cr_expect_eq(rows_of(3), 1);
}

/* ---- commits failing (the database locked) ------------------------------------------------ */

/* Another connection holds SQLite's write lock: the writer's BEGIN waits for the busy
 * timeout (5 s), then fails while reads still answer. */
static sqlite3 *lock_db(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void unlock_db(sqlite3 *db)
{
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
}

Test(writer, failed_begin_skips_and_delivers_then_recovers_by_itself, .init = setup,
     .fini = teardown)
{
    start(1024, 50000);
    struct writer_health h;
    writer_health(w, &h);
    cr_expect_eq(h.commits_failing, 0);
    cr_expect_eq(h.commit_failures, 0);

    sqlite3 *lock = lock_db();
    struct tjob a, b;
    init_job(&a, 1);
    init_job(&b, 2);
    cr_assert_eq(writer_submit(w, &a.job), 0);
    cr_assert_eq(writer_submit(w, &b.job), 0);
    wait_delivered(2);
    /* the contract (writer.h): every job is told, apply() did not run, skip() did */
    cr_expect_eq(a.result, -1);
    cr_expect_eq(b.result, -1);
    cr_expect_eq(a.runs + b.runs, 0, "apply() ran without a transaction");
    cr_expect_eq(a.skipped, 1);
    cr_expect_eq(b.skipped, 1);
    writer_health(w, &h);
    cr_expect(h.store_answers, "reads still answer: the store is not away");
    cr_expect(h.commits_failing, "a failed BEGIN is a failing commit");
    cr_expect_geq(h.commit_failures, 1);
    cr_expect(strstr(h.last_error, "begin failed") != NULL, "%s", h.last_error);
    cr_expect_gt(h.last_failure_ms, 0);

    unlock_db(lock);
    /* no job needed: the writer tries an empty transaction by itself */
    for (int i = 0; i < 300 && (writer_health(w, &h), h.commits_failing); i++)
        usleep(50 * 1000);
    cr_assert_not(h.commits_failing, "commits still failing after the lock was released");
    cr_expect_eq(h.commits, 0, "the empty transaction is not counted as a group commit");

    struct tjob c;
    init_job(&c, 3);
    c.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &c.job), 0);
    cr_expect_eq(rows_of(1) + rows_of(2), 0);
    cr_expect_eq(rows_of(3), 1);
}

Test(writer, a_job_failing_on_a_store_fault_is_a_failing_commit_until_a_write_succeeds,
     .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct writer_health h;
    struct tjob a;
    init_job(&a, 1);
    a.readonly = 1;
    a.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &a.job), -1);
    writer_health(w, &h);
    cr_expect(h.commits_failing, "a job that failed on a store fault is a failing commit");
    cr_expect_eq(h.commit_failures, 1);
    cr_expect(strstr(h.last_error, "store fault") && strstr(h.last_error, "readonly"), "%s",
              h.last_error);
    /* BEGIN and an empty COMMIT succeed (tried at 0.1, 0.3, 0.7 s): no flap to green */
    usleep(1200 * 1000);
    writer_health(w, &h);
    cr_expect(h.commits_failing, "an empty transaction cleared a job's store fault");
    cr_expect_eq(h.commit_failures, 1, "the empty transactions did not fail");

    /* a job failing on its data is not the store's: still failing, nothing more counted */
    struct tjob b;
    init_job(&b, 2);
    b.conflict = 1;
    b.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &b.job), -1);
    writer_health(w, &h);
    cr_expect(h.commits_failing);
    cr_expect_eq(h.commit_failures, 1, "a constraint violation counted as a failed commit");

    struct tjob c; /* a write as large as the failed one commits: green again */
    init_job(&c, 3);
    c.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &c.job), 0);
    writer_health(w, &h);
    cr_expect_not(h.commits_failing, "%s", h.last_error);
    cr_expect_eq(rows_of(3), 1);
}

static uint64_t now_ms(void); /* CLOCK_MONOTONIC, below */

Test(writer, a_store_fault_clears_without_traffic_after_30_s, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob a;
    init_job(&a, 1);
    a.readonly = 1;
    a.job.deliver = NULL;
    cr_expect_eq(writer_run(w, &a.job), -1);
    uint64_t t0 = now_ms();
    struct writer_health h;
    for (writer_health(w, &h); h.commits_failing && now_ms() - t0 < 40000; writer_health(w, &h))
        usleep(100 * 1000);
    uint64_t took = now_ms() - t0;
    cr_expect_not(h.commits_failing, "still failing after %llu ms", (unsigned long long)took);
    /* the hold (30 s), then the next empty transaction (tried at most every 2 s) */
    cr_expect(took >= 29900 && took <= 36000, "cleared after %llu ms", (unsigned long long)took);
    cr_expect_eq(h.commits, 0, "no group committed: the empty transaction cleared it");
}

/* A group of a blocker (its own group, committed first), then a job failing with
 * readonly (a store fault) or conflict (its data) and a good job grouped together: the
 * failing one is undone, the good one commits. Returns the writer's health after. */
static struct writer_health group_with_a_failing_job(int readonly)
{
    start(1024, 50000);
    struct tjob blocker, bad, good;
    init_job(&bad, 2);
    bad.readonly = readonly;
    bad.conflict = !readonly;
    init_job(&good, 3);
    submit_blocker(&blocker, 1);
    cr_assert_eq(writer_submit(w, &bad.job), 0);
    cr_assert_eq(writer_submit(w, &good.job), 0);
    release_blocker();
    wait_delivered(3);
    cr_expect_eq(bad.result, -1);
    cr_expect_eq(good.result, 0);
    cr_expect_eq(rows_of(3), 1);
    cr_expect_eq(good.commits_at_delivery, 2, "the blocker's group, then this one's");
    struct writer_health h;
    writer_health(w, &h);
    cr_expect_eq(h.commits, 2);
    return h;
}

Test(writer, a_job_failing_on_its_data_leaves_commits_succeeding, .init = setup, .fini = teardown)
{
    struct writer_health h = group_with_a_failing_job(0);
    cr_expect_not(h.commits_failing, "a constraint violation marked the store failing");
    cr_expect_eq(h.commit_failures, 0);
}

Test(writer, a_store_fault_in_a_group_fails_commits_though_the_others_commit, .init = setup,
     .fini = teardown)
{
    struct writer_health h = group_with_a_failing_job(1);
    cr_expect(h.commits_failing, "the group committed, but one job's write failed on a fault");
    cr_expect_eq(h.commit_failures, 1);
}

/* ---- writer_submit_later ------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

Test(writer, submit_later_runs_after_the_delay_in_due_order, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    struct tjob late, early;
    init_job(&late, 1);
    init_job(&early, 2);
    uint64_t t0 = now_ms();
    cr_assert_eq(writer_submit_later(w, &late.job, 600), 0);
    cr_assert_eq(writer_submit_later(w, &early.job, 300), 0);
    cr_expect_eq(writer_queue_depth(w), 0, "a job for later is not queued yet");
    wait_delivered(1);
    cr_expect_eq(early.delivered, 1, "the earlier one comes first");
    cr_expect_eq(late.delivered, 0);
    cr_expect_geq(now_ms() - t0, 300);
    wait_delivered(2);
    cr_expect_geq(now_ms() - t0, 600);
    cr_expect_eq(late.result, 0);
    cr_expect_eq(rows_of(1) + rows_of(2), 2);
}

Test(writer, stop_runs_the_jobs_waiting_for_later, .init = setup)
{
    start(1024, 50000);
    struct tjob t;
    init_job(&t, 1);
    cr_assert_eq(writer_submit_later(w, &t.job, 60 * 1000), 0);
    writer_stop(w);
    w = NULL;
    cr_expect_eq(t.delivered, 1, "a job for later is run when the writer stops");
    cr_expect_eq(t.result, 0);
    cr_expect_eq(rows_of(1), 1);
    teardown();
}

/* ---- writer_run -------------------------------------------------------------------------- */

Test(writer, run_waits_and_returns_apply_result, .init = setup, .fini = teardown)
{
    start(1024, 50000);
    for (int i = 0; i < 5; i++) {
        struct tjob t;
        init_job(&t, i);
        t.job.deliver = NULL;
        t.fail = i % 2;
        int r = writer_run(w, &t.job);
        cr_expect_eq(r, t.fail ? -1 : 0, "run %d returned %d", i, r);
        /* when writer_run returns, the commit is done: a second connection sees it */
        cr_expect_eq(rows_of(i), t.fail ? 0 : 1, "run %d", i);
    }
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 3);
}

/* ---- bounded queue ------------------------------------------------------------------------- */

Test(writer, submit_refuses_when_queue_full, .init = setup, .fini = teardown)
{
    start(5, 50000);
    cr_expect_eq(writer_queue_max(w), 5);
    struct tjob blocker;
    submit_blocker(&blocker, 1000);
    cr_expect_eq(writer_queue_depth(w), 0, "the running job is not queued");

    struct tjob *jobs = new_jobs(7, 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(writer_submit(w, &jobs[i].job), 0, "submit %d of 5", i);
    cr_expect_eq(writer_queue_depth(w), 5);
    cr_expect_eq(writer_submit(w, &jobs[5].job), -1, "6th job accepted into a queue of 5");
    cr_expect_eq(writer_submit(w, &jobs[6].job), -1);
    cr_expect_eq(writer_queue_depth(w), 5);

    release_blocker();
    wait_delivered(6);
    /* the refused jobs were not taken: never delivered, nothing written */
    usleep(100 * 1000);
    cr_expect_eq(jobs[5].delivered, 0);
    cr_expect_eq(jobs[6].delivered, 0);
    cr_expect_eq(rows_of(5), 0);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(jobs[i].result, 0, "job %d", i);

    /* once drained, the caller can submit its refused job again */
    cr_expect_eq(writer_queue_depth(w), 0);
    cr_expect_eq(writer_submit(w, &jobs[5].job), 0);
    wait_delivered(7);
    cr_expect_eq(jobs[5].result, 0);
    cr_expect_eq(rows_of(5), 1);
    free(jobs);
}

/* ---- stop ------------------------------------------------------------------------------------ */

static void *stop_thread(void *arg)
{
    writer_stop(arg);
    return NULL;
}

Test(writer, stop_drains_every_queued_job, .init = setup)
{
    start(1000, 10); /* small groups: several commits needed to drain */
    struct tjob blocker;
    submit_blocker(&blocker, 1000);
    struct tjob *jobs = new_jobs(50, 0);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(writer_submit(w, &jobs[i].job), 0);

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stop_thread, w), 0);
    /* Probe until the writer refuses because it is stopping (the queue is far from full). */
    struct tjob *probes = new_jobs(500, 100);
    int accepted = 0;
    for (;;) {
        cr_assert_lt(accepted, 500, "writer_stop() never made writer_submit() refuse");
        int depth = writer_queue_depth(w);
        if (writer_submit(w, &probes[accepted].job) != 0) {
            cr_expect_lt(depth, 1000);
            break;
        }
        accepted++;
        usleep(1000);
    }
    release_blocker();
    pthread_join(th, NULL);
    w = NULL; /* freed by writer_stop */

    cr_expect_eq(delivered_count(), 1 + 50 + accepted);
    cr_expect_eq(blocker.result, 0);
    for (int i = 0; i < 50; i++) {
        cr_expect_eq(jobs[i].delivered, 1, "job %d delivered %d times", i, jobs[i].delivered);
        cr_expect_eq(jobs[i].result, 0, "job %d", i);
    }
    for (int i = 0; i < accepted; i++)
        cr_expect_eq(probes[i].delivered, 1, "probe %d", i);
    cr_expect_eq(probes[accepted].delivered, 0, "the refused probe was run");
    cr_expect_eq(raw_int("SELECT count(*) FROM dlq"), 1 + 50 + accepted);
    free(jobs);
    free(probes);
    teardown();
}

Test(writer, stop_null_and_idle)
{
    writer_stop(NULL);
}

Test(writer, start_bad_uri)
{
    char err[256] = "";
    struct writer *x = writer_start("nosuch:/tmp/x", 10, 10, err, sizeof err);
    cr_expect_null(x);
    cr_expect_neq(err[0], 0);
    writer_stop(x);
}
