/*
 * test_store_jobs.c - the scheduler's history in the SQLite backend (src/store/sqlite/
 * sqlite_jobs.c): the cases of jobs_test.h, which test_store_pg_jobs.c runs on PostgreSQL,
 * each on a fresh store in a temp directory.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "jobs_test.h"
#include "store/store.h"

static char dir[64], db_path[128];
static struct store *st;

static void open_fresh(void)
{
    char err[256] = "", uri[160];
    snprintf(dir, sizeof dir, "/tmp/sluice-jobs-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", db_path);
    st = store_open(uri, 0, err, sizeof err);
    cr_assert_not_null(st, "store_open(%s): %s", uri, err);
    cr_assert_eq(store_migrate(st), 0, "migrate: %s", store_errmsg(st));
}

static void cleanup(void)
{
    store_close(st);
    st = NULL;
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", db_path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(jobs, .init = open_fresh, .fini = cleanup);

Test(jobs, add_and_duplicates)
{
    jobs_add_duplicate(st);
}
Test(jobs, state_machine_and_refusals)
{
    jobs_state_machine(st);
}
Test(jobs, fencing)
{
    jobs_fencing(st);
}
Test(jobs, cancel_queued_and_running)
{
    jobs_cancel(st);
}
Test(jobs, lost_runs_fail_once)
{
    jobs_lost(st);
}
Test(jobs, prune_bounds)
{
    jobs_prune(st);
}
Test(jobs, prune_a_week_of_minutes_stays_flat)
{
    jobs_prune_week(st);
}
Test(jobs, list_filters_keyset_active)
{
    jobs_list(st);
}
Test(jobs, last_run_success_and_streak)
{
    jobs_last(st);
}
Test(jobs, job_state_round_trip)
{
    jobs_state(st);
}
Test(jobs, migrate_tables_include_both)
{
    jobs_tables(st);
}
