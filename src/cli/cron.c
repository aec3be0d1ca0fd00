/*
 * cron.c - `sluice cron next`: the next run times of a cron expression in a time zone
 * (cron/cron.h), printed in UTC and local time; no server, no configuration.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cron/cron.h"
#include "cron/tz.h"
#include "util/timeparse.h"

static void put_time(char *out, size_t n, int64_t wall)
{
    int64_t days = wall / 86400 - (wall % 86400 < 0), y;
    int64_t sec = wall - days * 86400;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    snprintf(out, n, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d, (int)(sec / 3600),
             (int)(sec % 3600 / 60), (int)(sec % 60));
}

static const char synopsis[] =
    "usage: sluice cron next 'EXPR' [--tz ZONE] [--from TIME] [--count N]";

static int usage_error(const char *msg)
{
    fprintf(stderr, "sluice cron: %s\n", msg);
    return 2;
}

int cmd_cron(int argc, char **argv)
{
    static const struct option opts[] = {{"tz", required_argument, NULL, 'z'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"count", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    if (argc < 2 || strcmp(argv[1], "next") != 0)
        return usage_error(synopsis);
    const char *zone = "UTC", *from = NULL;
    long count = 5;
    int o;
    optind = 2;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'z':
            zone = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 'n':
            count = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || count < 1 || count > 1000)
                return usage_error("--count must be a number from 1 to 1000");
            break;
        case ':':
            return usage_error("an option needs a value (--tz, --from, --count)");
        default:
            fprintf(stderr, "sluice cron: unknown option %s\n", argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 1)
        return usage_error(synopsis);
    const char *expr = argv[optind];
    char err[512];
    struct cron c;
    if (cron_parse(expr, &c, err, sizeof err) < 0)
        return usage_error(err);
    int64_t now_ms = (int64_t)time(NULL) * 1000, after_ms = now_ms;
    if (from && time_parse(from, now_ms, &after_ms, err, sizeof err) < 0) {
        fprintf(stderr, "sluice cron: --from: %s\n", err);
        return 2;
    }
    struct tz *tz = tz_load(zone, err, sizeof err);
    if (!tz)
        return usage_error(err);
    int64_t t = after_ms / 1000 - (after_ms % 1000 < 0);
    for (long i = 0; i < count; i++) {
        t = cron_next(&c, tz, t);
        if (t < 0)
            break;
        int off = tz_offset_at(tz, t);
        char u[40], l[40];
        put_time(u, sizeof u, t);
        put_time(l, sizeof l, t + off);
        int a = off < 0 ? -off : off;
        printf("%sZ  %s%c%02d:%02d %s\n", u, l, off < 0 ? '-' : '+', a / 3600, a % 3600 / 60,
               tz_name(tz));
    }
    tz_free(tz);
    return 0;
}
