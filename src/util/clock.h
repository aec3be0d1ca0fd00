/*
 * clock.h - the few clocks sluice needs.
 */
#ifndef SLUICE_UTIL_CLOCK_H
#define SLUICE_UTIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t clock_wall_ms(void);  /* milliseconds since the epoch (CLOCK_REALTIME) */
uint64_t clock_mono_ns(void); /* monotonic nanoseconds, for durations */
/* "2026-11-23T01:02:03.456Z" into out (at least 25 bytes). Returns out. */
char *clock_rfc3339(int64_t ms, char *out, size_t cap);

#endif
