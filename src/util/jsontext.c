/*
 * jsontext.c - a JSON value as text, whole or NULL (jsontext.h).
 */
#include "util/jsontext.h"

#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* Most texts (an ingest's answer, a row's errors) fit here: one pass. */
#define STACK_TEXT 4096

char *jsontext_dump(const json_t *j, size_t flags)
{
    char stack[STACK_TEXT];
    if (!j)
        return NULL;
    size_t n = json_dumpb(j, stack, sizeof stack, flags);
    if (n == 0) /* an error (jansson's allocation) or an empty text, which JSON has not */
        return NULL;
    char *out = sl_malloc(n + 1);
    if (!out)
        return NULL;
    if (n <= sizeof stack)
        memcpy(out, stack, n);
    else if (json_dumpb(j, out, n, flags) != n) {
        free(out);
        return NULL;
    }
    out[n] = 0;
    return out;
}
