/*
 * utf8.h - UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). Written here because jansson validates UTF-8 only inside
 * its parser and does not export the check, and we need it to tell an
 * INVALID_UTF8 row from a MALFORMED_JSON one and to decide whether a DLQ
 * payload can be shown as text.
 */
#ifndef SLUICE_UTIL_UTF8_H
#define SLUICE_UTIL_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is valid UTF-8. */
int utf8_valid(const char *s, size_t len);

#endif
