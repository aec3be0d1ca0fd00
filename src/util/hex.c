/*
 * hex.c - see hex.h.
 */
#include "util/hex.h"

void hex_encode(const void *b, size_t n, char *out)
{
    static const char digit[] = "0123456789abcdef";
    const unsigned char *p = b;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digit[p[i] >> 4];
        out[2 * i + 1] = digit[p[i] & 15];
    }
    out[2 * n] = 0;
}
