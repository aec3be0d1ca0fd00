/*
 * test_store_pg_jobs.c - the scheduler's history in the PostgreSQL backend
 * (src/store/pg/pg_jobs.c) against a live server: the cases of jobs_test.h, which
 * test_store_jobs.c runs on SQLite, each on an empty schema sluice_j.
 *
 * Skipped unless SLUICE_TEST_PG names the server (a conninfo string or URL; "" = the PG*
 * environment), e.g. under a throwaway cluster (`make unit-pg`):
 *   pg_virtualenv sh -c 'SLUICE_TEST_PG="" build/tests/test_store_pg_jobs'
 * An advisory lock keeps parallel test processes from sharing the schema at the same time.
 */
#include <criterion/criterion.h>

#include "jobs_test.h"
#include "pg_test.h"
#include "store/pg/pg_internal.h"

static struct store *st;

static void open_fresh(void)
{
    st = pg_test_fresh("sluice_j", 7415962411);
}

static void close_store(void)
{
    if (st)
        pg_close(st);
    st = NULL;
}

TestSuite(pg_jobs, .init = open_fresh, .fini = close_store);

Test(pg_jobs, add_and_duplicates)
{
    jobs_add_duplicate(st);
}
Test(pg_jobs, state_machine_and_refusals)
{
    jobs_state_machine(st);
}
Test(pg_jobs, fencing)
{
    jobs_fencing(st);
}
Test(pg_jobs, cancel_queued_and_running)
{
    jobs_cancel(st);
}
Test(pg_jobs, lost_runs_fail_once)
{
    jobs_lost(st);
}
Test(pg_jobs, prune_bounds)
{
    jobs_prune(st);
}
Test(pg_jobs, prune_a_week_of_minutes_stays_flat)
{
    jobs_prune_week(st);
}
Test(pg_jobs, list_filters_keyset_active)
{
    jobs_list(st);
}
Test(pg_jobs, last_run_success_and_streak)
{
    jobs_last(st);
}
Test(pg_jobs, job_state_round_trip)
{
    jobs_state(st);
}
Test(pg_jobs, migrate_tables_include_both)
{
    jobs_tables(st);
}
