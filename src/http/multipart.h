/*
 * multipart.h - a streaming multipart/form-data parser (RFC 7578 over the
 * RFC 2046 multipart syntax) for uploads of any size in constant memory.
 *
 * The request body is pushed in chunks of any size (multipart_feed); each part
 * is reported as part_begin (its form field name, filename and Content-Type),
 * then its content bytes through part_data, as soon as they are certain not to
 * be the start of a delimiter, then part_end. The only bytes ever held back
 * between two feeds are a partial "CRLF--boundary" (at most boundary length + 3
 * bytes, all of them known delimiter bytes, so nothing is copied), and one
 * part's header block (at most max_header_bytes). Memory is allocated once, by
 * multipart_create: max_header_bytes * 2 + boundary length + a small constant.
 *
 * The syntax accepted:
 *   - the Content-Type must be multipart/form-data (case-insensitive) with a
 *     boundary parameter, as a token or a quoted string: 1 to 70 characters of
 *     RFC 2046 bchars (letters, digits, '()+_,-./:=? and space), not ending in
 *     a space; other parameters are ignored, a second boundary is an error;
 *   - line ends are CRLF, as RFC 2046 and RFC 7578 say and as every browser and
 *     HTTP client sends them. LF-only bodies are refused with a message saying
 *     so, not guessed at: in binary content a lone "\n--boundary" cannot be
 *     told from data, and a silently truncated or extended file is worse than
 *     a 400;
 *   - the preamble before the first "--boundary" (which may start the body
 *     or follow a CRLF) and the epilogue after the closing "--boundary--" are
 *     ignored; a boundary line may end in spaces or tabs (transport padding);
 *   - a delimiter followed by anything but padding + CRLF or "--" is an error
 *     (RFC 2046: the delimiter never occurs inside a part); in the preamble
 *     such a look-alike is preamble text, except when a bare LF follows it
 *     (the LF-only case above);
 *   - each part's header block (its lines plus the empty line ending it) must
 *     fit in max_header_bytes; folded lines are unfolded; a bare CR or LF or a
 *     NUL byte in it is an error;
 *   - each part needs exactly one Content-Disposition: form-data with a name
 *     parameter (RFC 7578 4.2); filename is optional; filename* and name* are
 *     ignored (RFC 7578 4.2: senders must not use them); parameter values are
 *     tokens or quoted strings, where \" and \\ are escapes and any other
 *     backslash is kept as it is (old browsers send "C:\dir\f.txt" unescaped;
 *     current ones percent-encode '"' and never use backslash escapes);
 *   - other part headers (Content-Transfer-Encoding, ...) are ignored, and so
 *     is the part's charset: content bytes are handed over as they came.
 */
#ifndef SLUICE_HTTP_MULTIPART_H
#define SLUICE_HTTP_MULTIPART_H

#include <stddef.h>

/* One part's headers. The strings are NUL-terminated and valid until the
 * part_begin callback returns. They come from the client: filename in
 * particular may hold '/', '\\', ".." or control characters. */
struct multipart_part {
    const char *name;         /* the form field name, never NULL (may be "") */
    const char *filename;     /* NULL when the part has no filename parameter */
    const char *content_type; /* the part's Content-Type value, trimmed; NULL when absent */
    size_t index;             /* 0 for the first part */
};

/* Each callback returns 0 to go on, non-zero to stop: multipart_feed then returns
 * that value (use positive values to tell them from the parser's -1). A NULL
 * callback counts as returning 0. part_data is never called with len 0; data is
 * valid only during the call. After an error or a stop no callback is called
 * again, and the part in progress gets no part_end. */
struct multipart_cb {
    int (*part_begin)(void *arg, const struct multipart_part *part);
    int (*part_data)(void *arg, const char *data, size_t len);
    int (*part_end)(void *arg);
};

struct multipart;

/* Parses the boundary out of content_type (the Content-Type header's value).
 * Returns NULL and a message in err (when err is not NULL) when the header is
 * missing, is not multipart/form-data, has no or an invalid boundary, when
 * max_header_bytes is 0, or out of memory. cb is copied. */
struct multipart *multipart_create(const char *content_type, size_t max_header_bytes,
                                   const struct multipart_cb *cb, void *arg, char *err,
                                   size_t errlen);
void multipart_destroy(struct multipart *m); /* accepts NULL */

/* Push the next chunk of the body (len may be 0). Returns 0, a callback's
 * non-zero value, or -1 on a syntax error (see multipart_error). Both are
 * sticky: later multipart_feed / multipart_finish calls return them again. */
int multipart_feed(struct multipart *m, const char *data, size_t len);

/* End of the body: 0 when the closing "--boundary--" was seen, else -1 (or the
 * sticky value of an earlier error or stop). Feeding after it is an error. */
int multipart_finish(struct multipart *m);

/* The last error or stop as human text ("" when none), with the byte offset in
 * the body where it was found. Valid until the next call on m. */
const char *multipart_error(const struct multipart *m);

#endif
