/*
 * cron.c - `sluice cron next`: the next run times of a cron expression in a time zone
 * (cron/cron.h), printed in UTC and local time; no server, no configuration.
 */
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

static int usage_error(const char *msg)
{
    fprintf(stderr, "sluice cron: %s\n", msg);
    return 2;
}

int cmd_cron(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "next") != 0)
        return usage_error("usage: sluice cron next 'EXPR' [--tz ZONE] [--from RFC3339] "
                           "[--count N]");
    const char *expr = argv[2], *zone = "UTC", *from = NULL;
    long count = 5;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            return usage_error("an option needs a value (--tz, --from, --count)");
        if (strcmp(argv[i], "--tz") == 0)
            zone = argv[++i];
        else if (strcmp(argv[i], "--from") == 0)
            from = argv[++i];
        else if (strcmp(argv[i], "--count") == 0) {
            char *end;
            count = strtol(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end || count < 1 || count > 1000)
                return usage_error("--count must be a number from 1 to 1000");
        } else {
            fprintf(stderr, "sluice cron: unknown option %s\n", argv[i]);
            return 2;
        }
    }
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
