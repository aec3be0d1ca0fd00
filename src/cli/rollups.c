/*
 * rollups.c - `sluice rollups rebuild`: recompute the rollups from the rollup
 * ledger, on the store the configuration names, one dataset and hour per
 * transaction (a chunk), so that a running server's writer waits at most for
 * one chunk (docs/operations.md gives the bound and a measurement).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jwt_keys.h"
#include "cli/cli.h"
#include "config/config.h"
#include "store/store.h"
#include "util/clock.h"

/* The rebuild lets the server's writer in: after at most WORK_MS of chunks back to back it
 * leaves the store alone for GAP_MS, longer than SQLite's busy handler sleeps between its
 * tries (100 ms), so that a waiting write is not starved by the next chunk. */
#define WORK_MS 200
#define GAP_MS 120

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Every chunk in its own transaction. 0, or -1 with the store's message printed. */
static int rebuild(struct store *st, const struct sluice_config *cfg)
{
    struct rollup_chunk *v = NULL;
    size_t n = 0;
    if (store_rollup_chunks(st, &v, &n) < 0) {
        fprintf(stderr, "sluice: rebuild failed: %s\n", store_errmsg(st));
        return -1;
    }
    /* longest: a chunk's transaction, from BEGIN (the writer's lock taken) to COMMIT, what
     * the server's writes wait for; wait: the longest BEGIN, waiting for the server. */
    uint64_t t0 = clock_mono_ns(), longest = 0, wait = 0, worked = 0;
    int64_t from = clock_wall_ms() - config_minute_rollups_kept_ms(cfg); /* older: the purge's */
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (worked >= WORK_MS * 1000000ull) {
            pause_ms(GAP_MS);
            worked = 0;
        }
        uint64_t c0 = clock_mono_ns(), c1 = c0;
        if (store_begin(st) < 0) {
            rc = -1;
        } else if (c1 = clock_mono_ns(),
                   store_rollup_rebuild(st, &v[i], from) < 0 || store_commit(st) < 0) {
            store_rollback(st);
            rc = -1;
        }
        uint64_t c2 = clock_mono_ns();
        worked += c2 - c1;
        if (c2 - c1 > longest)
            longest = c2 - c1;
        if (c1 - c0 > wait)
            wait = c1 - c0;
    }
    if (rc < 0)
        fprintf(stderr, "sluice: rebuild failed: %s\n", store_errmsg(st));
    else
        printf("{\"rollups\": \"rebuilt\", \"chunks\": %zu, \"longest_chunk_ms\": %.1f,"
               " \"longest_wait_ms\": %.1f, \"total_ms\": %.1f}\n",
               n, (double)longest / 1e6, (double)wait / 1e6, (double)(clock_mono_ns() - t0) / 1e6);
    free(v);
    return rc;
}

int cmd_rollups(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {NULL, 0, NULL, 0}};
    const char *config = getenv("SLUICE_CONFIG");
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (o != 'c') {
            fputs(cli_find("rollups")->usage, stderr);
            return 2;
        }
        config = optarg;
    }
    if (argc < 2 || strcmp(argv[1], "rebuild") != 0) {
        fputs(cli_find("rollups")->usage, stderr);
        return 2;
    }
    struct sluice_config cfg;
    char err[600];
    if (jwt_keys_config_load(config, &cfg, err, sizeof err) < 0 ||
        config_apply_env(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 2;
    }
    struct store *st = store_open(cfg.storage, 0, err, sizeof err);
    int rc = 1;
    if (!st || store_migrate(st) < 0)
        fprintf(stderr, "sluice: %s\n", st ? store_errmsg(st) : err);
    else if (rebuild(st, &cfg) == 0)
        rc = 0;
    store_close(st);
    config_release(&cfg);
    return rc;
}
