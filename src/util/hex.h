/*
 * hex.h - bytes as lowercase hex (digests, ids, a bytea literal).
 */
#ifndef SLUICE_UTIL_HEX_H
#define SLUICE_UTIL_HEX_H

#include <stddef.h>

/* The n bytes of b as 2n lowercase hex digits in out, NUL-terminated (2n + 1 bytes). */
void hex_encode(const void *b, size_t n, char *out);
/* Exactly 2n hex digits (either case) in the string s into the n bytes at out: 0; -1 when s
 * is shorter, longer or has anything else (out is then partly written). */
int hex_decode(const char *s, void *out, size_t n);

#endif
