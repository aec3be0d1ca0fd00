/*
 * timeparse.h - one parser for every time a user gives sluice (query parameters such as
 * created_after and since, and the CLI's --since/--until): epoch milliseconds, an RFC 3339
 * date-time, or a duration before now.
 */
#ifndef SLUICE_UTIL_TIMEPARSE_H
#define SLUICE_UTIL_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse s into milliseconds since the epoch. Accepted:
 *   - epoch milliseconds: digits only ("1767225600000"), 0 and up;
 *   - RFC 3339: YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm), 'T'/'Z' in either case,
 *     a real calendar date (leap days included), seconds 00-60 (60 is taken as the next
 *     second), fractions beyond milliseconds truncated; a space in place of the offset's
 *     '+' is taken as '+' (an unencoded '+' in a URL query arrives as a space);
 *   - a duration before now_ms: a positive integer and a unit, ms, s, m, h, d or w
 *     ("30m", "24h", "7d").
 * Returns 0 with *out set, or -1 with err (errlen bytes) saying what is wrong, for a
 * value that is none of these, out of range (before 1970 or overflowing) or negative.
 * Thread-safe; no allocation.
 */
int time_parse(const char *s, int64_t now_ms, int64_t *out, char *err, size_t errlen);

#endif
