/*
 * serve.c - `sluice serve`: load the configuration, start the service, then
 * wait for signals on the main thread (every other thread blocks them):
 * SIGHUP reloads, SIGTERM and SIGINT stop gracefully.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit.h"
#include "cli/cli.h"
#include "util/clock.h"
#include "service/service.h"
#include "util/log.h"
#include "util/mem.h"

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"data-dir", required_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    struct service svc = {0};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:l:d:", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            free(svc.config_path);
            svc.config_path = sl_strdup(optarg);
            break;
        case 'l':
            free(svc.listen_override);
            svc.listen_override = sl_strdup(optarg);
            break;
        case 'd':
            free(svc.data_dir_override);
            svc.data_dir_override = sl_strdup(optarg);
            break;
        default:
            fprintf(stderr, "%s", cli_find("serve")->usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    struct sluice_config cfg;
    char err[1024];
    int rc = 0;
    if (service_load_config(&svc, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        rc = 2;
        goto out;
    }
    if (cfg.log.level)
        log_set_level(cfg.log.level);

    /* Block the signals we handle in every thread; the main thread waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint64_t shutdown_ms = cfg.shutdown_timeout_ms;
    if (service_start(&svc, &cfg, err, sizeof err) < 0) {
        char m[1100];
        log_error("service", "start failed", "\"error\":\"%s\"",
                  log_json_str(m, sizeof m, err, (size_t)-1));
        fprintf(stderr, "sluice: %s\n", err);
        config_release(&cfg); /* a failed start has undone itself and left cfg to us */
        rc = 1;
        goto out;
    }
    for (;;) {
        /* Wake once a minute for housekeeping: expired idempotency keys. */
        struct timespec minute = {60, 0};
        int sig = sigtimedwait(&set, NULL, &minute);
        if (sig < 0) {
            if (service_purge(&svc) < 0)
                log_warn("service", "purge failed (expired idempotency keys, old minute rollups)",
                         NULL);
            audit_flush_key_use(svc.writer, clock_wall_ms());
            continue;
        }
        if (sig == SIGHUP) { /* the outcome is logged */
            char why[1024];
            service_reload(&svc, NULL, why, sizeof why);
            continue;
        }
        log_info("service", "stopping", "\"signal\":\"%s\"", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    service_stop(&svc, shutdown_ms);
    log_info("service", "stopped", NULL);
out:
    free(svc.config_path);
    free(svc.listen_override);
    free(svc.data_dir_override);
    return rc;
}
