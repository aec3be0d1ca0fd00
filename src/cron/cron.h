/*
 * cron.h - 5-field cron expressions (minute hour day-of-month month day-of-week) and the
 * next run instant of one in a time zone. config/ compiles a job's schedule with cron_parse
 * at load; the scheduler (src/sched/) evaluates it with cron_next.
 *
 * Syntax: each field is a comma list of `*`, `N`, `A-B`, each optionally `/STEP`
 * (`*`/5, `1-30/7`; `5/15` means 5-MAX/15). Months JAN-DEC and days SUN-SAT by name
 * (any case); day of week 0 or 7 is Sunday. Vixie cron's day rule: when both day fields
 * are restricted (neither starts with `*`), a day matching EITHER runs; otherwise both
 * must match. Macros: @hourly @daily @midnight @weekly @monthly @yearly @annually.
 * An expression that never fires (`0 0 30 2 *`) is refused.
 *
 * THE DST RULE: a schedule is a set of local wall-clock times in its zone. A local time
 * that does not exist (a spring-forward gap) runs once, at the first instant after the gap
 * (several gap times coalesce into that one instant; an instant is never returned twice).
 * A local time that occurs twice (a fall-back fold) runs once, at its first occurrence,
 * except for schedules whose hour field is `*` (`* * * * *`, `*`/15 `* * * *`, @hourly),
 * which run in both passes. A gap may be a whole day: Pacific/Apia skipped 30 December
 * 2011 (29 Dec 23:59:59 -10:00 was followed by 31 Dec 00:00 +14:00), so every 30 December
 * time of a schedule runs once at 31 Dec 00:00 local, and a daily `0 12 * * *` runs there
 * (for 30 Dec 12:00) and again at 31 Dec 12:00.
 *
 * struct cron is a small value (bitmasks): no allocation, copy it freely; every function
 * is thread-safe.
 */
#ifndef SLUICE_CRON_CRON_H
#define SLUICE_CRON_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron/tz.h"

struct cron {
    uint64_t minutes;        /* bit m: minute m (0-59) */
    uint32_t hours;          /* bit h (0-23) */
    uint32_t dom;            /* bit d (1-31) */
    uint16_t months;         /* bit m (1-12) */
    uint8_t dow;             /* bit d (0-6, 0 Sunday) */
    bool dom_star, dow_star; /* the field starts with `*` (Vixie's rule) */
    bool hour_star;          /* the hour field is `*` (runs in both passes of a fold) */
};

/* Parse expr into *out. Returns 0, or -1 with err naming the field and the problem
 * ("cron: field 2 (hour): 24 is out of range 0-23"). */
int cron_parse(const char *expr, struct cron *out, char *err, size_t errlen);

/* The first run instant (UTC seconds) strictly after after_utc_s under the DST rule above,
 * or -1 if none within 400 years (cannot happen for a parsed expression). */
int64_t cron_next(const struct cron *c, const struct tz *tz, int64_t after_utc_s);

#endif
