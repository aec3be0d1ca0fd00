/*
 * buf.h - a growable byte buffer with a hard cap (the idea of curl's dynbuf):
 * every buffer that grows from outside input has a limit, and appending past it
 * fails instead of allocating.
 */
#ifndef SLUICE_UTIL_BUF_H
#define SLUICE_UTIL_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* owned; always NUL-terminated when len > 0 or after buf_reserve */
    size_t len, cap, max;
    /* An allocation failed: what was appended is dropped (data NULL, len 0) and every
     * append fails until buf_init or buf_reset, so a text built in steps (SQL, JSON) is
     * whole or missing, never short of a piece. */
    int failed;
};

void buf_init(struct buf *b, size_t max); /* empty, no allocation */
void buf_release(struct buf *b);          /* frees data; b can be reused after buf_init */
void buf_reset(struct buf *b);            /* len = 0, keeps memory, forgets failed */
/* Make room for n more bytes up front (e.g. from Content-Length); -1 past max. */
int buf_reserve(struct buf *b, size_t n);
/* Append; returns 0, or -1 when it would exceed max (nothing appended) or on OOM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appends(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal with quotes. */
int buf_append_json_str(struct buf *b, const char *s, size_t n);
/* Take the data out: caller frees; b becomes empty. NULL when out of memory (failed). */
char *buf_steal(struct buf *b, size_t *len);

#endif
