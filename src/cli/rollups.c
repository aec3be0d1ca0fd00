/*
 * rollups.c - `sluice rollups rebuild`: recompute the rollups from the stored
 * rows, DLQ entries and batches, on the store the configuration names, in one
 * transaction (a running server keeps working; its writes wait for it).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "store/store.h"

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
    if (config_load(config, &cfg, err, sizeof err) < 0 ||
        config_apply_env(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 2;
    }
    struct store *st = store_open(cfg.storage, 0, err, sizeof err);
    int rc = 1;
    if (!st || store_migrate(st) < 0 || store_begin(st) < 0) {
        fprintf(stderr, "sluice: %s\n", st ? store_errmsg(st) : err);
    } else if (store_rollup_rebuild(st) < 0 || store_commit(st) < 0) {
        fprintf(stderr, "sluice: rebuild failed: %s\n", store_errmsg(st));
        store_rollback(st);
    } else {
        printf("{\"rollups\": \"rebuilt\"}\n");
        rc = 0;
    }
    store_close(st);
    config_release(&cfg);
    return rc;
}
