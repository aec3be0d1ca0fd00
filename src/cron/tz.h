/*
 * tz.h - a time zone read from the system's TZif files (RFC 8536): the offset from UTC in
 * force at an instant, and the instants a local wall-clock time corresponds to. Used by
 * cron/cron.c (a schedule's zone) and by `sluice cron next`.
 *
 * Zones are read from $TZDIR, else /usr/share/zoneinfo: the version 2+ 64-bit data when the
 * file has it (else the version 1 data), and the footer's POSIX TZ string for instants after
 * the last transition. No setenv("TZ")/localtime: a loaded zone is plain memory.
 *
 * Ownership and threads: tz_load returns a zone the caller owns and releases with tz_free;
 * there is no cache. A loaded zone is never modified, so any number of threads may query
 * one zone at once; tz_free must not race with queries.
 */
#ifndef SLUICE_CRON_TZ_H
#define SLUICE_CRON_TZ_H

#include <stddef.h>
#include <stdint.h>

struct tz;

/*
 * Load the zone NAME ("Europe/Berlin"). "UTC" always works, even without zone files.
 * Refused, with the reason in err (errlen bytes): an empty name, an absolute path, a name
 * containing "..", a missing file, a file that is not TZif or is malformed.
 */
struct tz *tz_load(const char *name, char *err, size_t errlen);
void tz_free(struct tz *tz);

/* The name it was loaded by (owned by the zone). */
const char *tz_name(const struct tz *tz);

/* Seconds east of UTC in force at the instant utc_s (seconds since the epoch). */
int tz_offset_at(const struct tz *tz, int64_t utc_s);

/*
 * Local to UTC. wall is a local wall-clock time written as seconds since the epoch as if it
 * were UTC. Returns how many instants show that wall time: 1 (usual), 2 (a fall-back fold:
 * out[0] < out[1], the first and second occurrence) or 0 (a spring-forward gap: the time
 * does not exist; *gap_end is set to the first instant after the gap, the transition).
 */
int tz_local_to_utc(const struct tz *tz, int64_t wall, int64_t out[2], int64_t *gap_end);

/* Calendar helpers shared with cron.c: days since 1970-01-01 <-> proleptic Gregorian date. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
