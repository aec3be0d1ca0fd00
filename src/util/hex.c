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

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *s, void *out, size_t n)
{
    unsigned char *p = out;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(s[2 * i]), lo = hi < 0 ? -1 : nibble(s[2 * i + 1]);
        if (lo < 0)
            return -1;
        p[i] = (unsigned char)(hi << 4 | lo);
    }
    return s[2 * n] == 0 ? 0 : -1;
}
