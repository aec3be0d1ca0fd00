/*
 * jsontext.h - a JSON value as text, or NULL: json_dumps() without its failure mode.
 *
 * Why not json_dumps(): when an allocation fails while it grows its buffer in the middle of
 * an object's key, jansson 2.14 carries on and returns a text with that key missing (seen
 * in tests/unit/test_alloc_failure.c), which sluice would store (a DLQ entry's errors, a
 * row's _extra, an idempotent answer). jsontext_dump() writes with json_dumpb() into a
 * buffer of the right size, where no write can fail half-way: the text is whole or NULL.
 *
 * Any thread; the caller frees the text (free).
 */
#ifndef SLUICE_UTIL_JSONTEXT_H
#define SLUICE_UTIL_JSONTEXT_H

#include <jansson.h>

/* j as text (json_dumps' flags), NUL-terminated; NULL when out of memory or j is NULL. */
char *jsontext_dump(const json_t *j, size_t flags);

#endif
