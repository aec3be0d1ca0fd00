/*
 * csv.c - the streaming CSV reader of csv.h, written by hand.
 *
 * It turns uploads of any size, pushed chunk by chunk, into records for the
 * ingest pipeline: each record comes with its unescaped fields and with its
 * exact original bytes (for the dead-letter queue), its line number, and a
 * per-record error (MALFORMED_CSV, INVALID_UTF8, ROW_TOO_LARGE) instead of a
 * failed upload. Why by hand: Debian's only C CSV library, libcsv (packages
 * libcsv3 / libcsv-dev 3.0.3, LGPL-2.1+ rather than GPL), is a streaming
 * parser with field and record callbacks, but it hands over neither a
 * record's raw bytes nor its line, and in strict mode it stops at a stray
 * quote (csv_parse returns short, CSV_EPARSE) instead of failing one record
 * and going on; wrapping it would cost more than these ~500 lines.
 *
 * How it works: a state machine over each chunk, with fast inner loops that
 * skip runs of ordinary bytes through a byte-class table. A record lying
 * wholly inside one chunk is not copied: its raw bytes are handed over from
 * the caller's chunk. Only a record cut by a chunk boundary is carried over
 * in one growable buffer (never larger than max_record_bytes). Fields are
 * tracked as offsets into the record; when the record ends they are copied
 * (and unescaped) once into a second reusable buffer, NUL-terminated. Nothing
 * is allocated per record or per field once the buffers have grown.
 *
 * Choices the header leaves open:
 *   - a record with an error carries no fields (nfields == 0), only raw;
 *   - one error per record, by precedence ROW_TOO_LARGE, then MALFORMED_CSV,
 *     then INVALID_UTF8 (UTF-8 is checked once over the raw bytes);
 *   - after a stray quote (`ab"c` or `"ab"c`) the rest of that field is read
 *     as unquoted text, quotes included, so the record ends at the next line
 *     end; a stray quote never swallows the following lines;
 *   - a non-zero callback value is sticky: later csv_feed / csv_finish calls
 *     return it again and do nothing; so is -1 (out of memory);
 *   - csv_reader_create returns NULL for a NULL callback or max_record_bytes 0.
 */
#include "ingest/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"
#include "util/mem.h"

enum state {
    ST_BOM,   /* at the very start, matching a UTF-8 BOM */
    ST_REC,   /* between records (line ends here are empty lines) */
    ST_FIELD, /* at the start of a field inside a record */
    ST_UNQ,   /* inside an unquoted field */
    ST_QUO,   /* inside a quoted field */
    ST_QQ,    /* just after a quote inside a quoted field: closing or doubled */
};

struct span {
    size_t start, end;         /* offsets in the record; quotes included for a quoted field */
    unsigned char quoted, esc; /* esc: holds "" pairs to unescape */
};

struct csv_reader {
    size_t max;
    csv_record_cb cb;
    void *arg;

    enum state st;
    int bom_n;   /* BOM bytes matched so far */
    int stop;    /* sticky non-zero result */
    int last_cr; /* the last byte of the previous chunk was '\r' */
    int64_t line, index;

    /* the record being read */
    int64_t rec_line;
    int carry;      /* it began in an earlier chunk */
    size_t carried; /* its bytes in earlier chunks (all of them, even past max) */
    char *raw;      /* the first min(carried, max) of them */
    size_t raw_len, raw_cap;
    size_t fstart; /* where the current field starts */
    unsigned char fquoted, fesc;
    enum sluice_err err;

    struct span *spans;
    struct csv_field *fields;
    size_t nf, f_cap;
    char *fld; /* the unescaped, NUL-terminated field data */
    size_t fld_cap;
    char msg[200];
};

/* Bytes that end a run inside an unquoted field / a quoted field. */
static const unsigned char stop_unq[256] = {[','] = 1, ['"'] = 1, ['\r'] = 1, ['\n'] = 1};
static const unsigned char stop_quo[256] = {['"'] = 1, ['\r'] = 1, ['\n'] = 1};

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};

struct csv_reader *csv_reader_create(size_t max_record_bytes, csv_record_cb cb, void *arg)
{
    if (!cb || max_record_bytes == 0)
        return NULL;
    struct csv_reader *r = sl_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->max = max_record_bytes;
    r->cb = cb;
    r->arg = arg;
    r->st = ST_BOM;
    r->line = 1;
    return r;
}

void csv_reader_destroy(struct csv_reader *r)
{
    if (!r)
        return;
    free(r->raw);
    free(r->spans);
    free(r->fields);
    free(r->fld);
    free(r);
}

/* Grows *buf to hold at least need bytes (need <= max + 1). 0 or -1. */
static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    char *p = sl_realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static void set_malformed(struct csv_reader *r, const char *what)
{
    if (r->err != SLUICE_OK)
        return;
    r->err = ERR_MALFORMED_CSV;
    snprintf(r->msg, sizeof(r->msg), "%s (field %zu)", what, r->nf + 1);
}

/* The current field ends at record offset end. 0 or -1. */
static int push_field(struct csv_reader *r, size_t end)
{
    if (end > r->max) {
        r->err = ERR_ROW_TOO_LARGE;
        return 0;
    }
    if (r->err != SLUICE_OK)
        return 0;
    if (r->nf == r->f_cap) {
        size_t n = r->f_cap ? r->f_cap * 2 : 32;
        struct span *s = sl_realloc(r->spans, n * sizeof(*s));
        if (!s)
            return -1;
        r->spans = s;
        struct csv_field *f = sl_realloc(r->fields, n * sizeof(*f));
        if (!f)
            return -1;
        r->fields = f;
        r->f_cap = n;
    }
    r->spans[r->nf++] = (struct span){r->fstart, end, r->fquoted, r->fesc};
    return 0;
}

/* Copies the fields out of raw into r->fld, unescaped and NUL-terminated. */
static int build_fields(struct csv_reader *r, const char *raw, size_t raw_len)
{
    if (grow(&r->fld, &r->fld_cap, raw_len + 1) < 0)
        return -1;
    char *out = r->fld;
    for (size_t i = 0; i < r->nf; i++) {
        const struct span *s = &r->spans[i];
        const char *src = raw + s->start;
        size_t n = s->end - s->start;
        if (s->quoted) {
            src++;
            n -= 2;
        }
        char *data = out;
        if (!s->esc) {
            memcpy(out, src, n);
            out += n;
        } else {
            const char *e = src + n;
            while (src < e) {
                const char *q = memchr(src, '"', (size_t)(e - src));
                size_t k = q ? (size_t)(q - src) + 1 : (size_t)(e - src);
                memcpy(out, src, k);
                out += k;
                src += k + (q != NULL); /* skip the second quote of the pair */
            }
        }
        *out++ = '\0';
        r->fields[i] = (struct csv_field){data, (size_t)(out - 1 - data), s->quoted};
    }
    return 0;
}

/*
 * The record ends; its bytes are r->raw[0..raw_len) (carried from earlier
 * chunks, when r->carry) followed by part[0..part_len) of the current chunk.
 * Hands it over and resets for the next record. Returns the callback's value
 * or -1.
 */
static int emit(struct csv_reader *r, const char *part, size_t part_len)
{
    size_t total = r->carried + part_len;
    if (total > r->max)
        r->err = ERR_ROW_TOO_LARGE;

    const char *raw;
    size_t raw_len;
    if (!r->carry) {
        raw = part;
        raw_len = total > r->max ? r->max : total;
    } else {
        size_t room = r->max - r->raw_len;
        size_t k = part_len < room ? part_len : room;
        if (k) {
            if (grow(&r->raw, &r->raw_cap, r->raw_len + k) < 0)
                return -1;
            memcpy(r->raw + r->raw_len, part, k);
            r->raw_len += k;
        }
        raw = r->raw;
        raw_len = r->raw_len;
    }

    if (r->err == SLUICE_OK && !utf8_valid(raw, raw_len)) {
        r->err = ERR_INVALID_UTF8;
        snprintf(r->msg, sizeof(r->msg), "the record is not valid UTF-8");
    }
    if (r->err == ERR_ROW_TOO_LARGE)
        snprintf(r->msg, sizeof(r->msg),
                 "the record is %zu bytes; limits.max_row_bytes is %zu (its raw text is truncated "
                 "to the first %zu bytes)",
                 total, r->max, raw_len);
    if (r->err == SLUICE_OK) {
        if (build_fields(r, raw, raw_len) < 0)
            return -1;
    } else {
        r->nf = 0;
    }

    struct csv_record rec = {
        .index = ++r->index,
        .line = r->rec_line,
        .fields = r->nf ? r->fields : NULL,
        .nfields = r->nf,
        .raw = raw,
        .raw_len = raw_len,
        .error = r->err,
        .error_message = r->err != SLUICE_OK ? r->msg : NULL,
    };
    r->carry = 0;
    r->carried = 0;
    r->raw_len = 0;
    r->nf = 0;
    r->err = SLUICE_OK;
    return r->cb(r->arg, &rec);
}

/* Keeps the part of the current record that is in this chunk for the next one. */
static int carry_over(struct csv_reader *r, const char *part, size_t part_len)
{
    if (r->carried + part_len > r->max)
        r->err = ERR_ROW_TOO_LARGE;
    size_t room = r->max - r->raw_len;
    size_t k = part_len < room ? part_len : room;
    if (k) {
        if (grow(&r->raw, &r->raw_cap, r->raw_len + k) < 0)
            return -1;
        memcpy(r->raw + r->raw_len, part, k);
        r->raw_len += k;
    }
    r->carried += part_len;
    r->carry = 1;
    return 0;
}

/* The state machine over one chunk (the BOM already dealt with). */
static int scan(struct csv_reader *r, const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data, *p = s, *end = s + len;
    enum state st = r->st;
    int64_t line = r->line;
    size_t cs = 0;           /* where the current record starts in this chunk */
    size_t off = r->carried; /* record offset of q is (q - s) + off (unsigned wrap) */
    int rc = 0;

#define POS(q) ((size_t)((q)-s) + off)
#define PREV_CR(q) ((q) > s ? (q)[-1] == '\r' : r->last_cr)
#define END_RECORD()                                                                               \
    do {                                                                                           \
        rc = emit(r, (const char *)s + cs, (size_t)(p - s) - cs);                                  \
        line++;                                                                                    \
        p++;                                                                                       \
        st = ST_REC;                                                                               \
        if (rc)                                                                                    \
            goto out;                                                                              \
    } while (0)

    while (p < end) {
        unsigned char c;
        switch (st) {
        case ST_REC:
            c = *p;
            if (c == '\n') {
                if (!PREV_CR(p))
                    line++;
                p++;
                continue;
            }
            if (c == '\r') {
                line++;
                p++;
                continue;
            }
            cs = (size_t)(p - s);
            off = 0 - cs;
            r->rec_line = line;
            st = ST_FIELD;
            /* fallthrough */
        case ST_FIELD:
            r->fstart = POS(p);
            r->fesc = 0;
            c = *p;
            if (c == '"') {
                r->fquoted = 1;
                st = ST_QUO;
                p++;
                continue;
            }
            r->fquoted = 0;
            if (c == ',') {
                if (push_field(r, POS(p)) < 0)
                    goto oom;
                p++;
                continue;
            }
            if (c == '\r' || c == '\n') {
                if (push_field(r, POS(p)) < 0)
                    goto oom;
                END_RECORD();
                continue;
            }
            st = ST_UNQ;
            /* fallthrough */
        case ST_UNQ:
            while (p < end && !stop_unq[*p])
                p++;
            if (p == end)
                continue;
            c = *p;
            if (c == '"') {
                set_malformed(r, "a quote inside an unquoted field");
                p++;
                continue;
            }
            if (push_field(r, POS(p)) < 0)
                goto oom;
            if (c == ',') {
                st = ST_FIELD;
                p++;
                continue;
            }
            END_RECORD();
            continue;
        case ST_QUO:
            while (p < end && !stop_quo[*p])
                p++;
            if (p == end)
                continue;
            c = *p;
            if (c == '"') {
                st = ST_QQ;
                p++;
                continue;
            }
            if (c == '\r' || !PREV_CR(p))
                line++;
            p++;
            continue;
        case ST_QQ:
            c = *p;
            if (c == '"') {
                r->fesc = 1;
                st = ST_QUO;
                p++;
                continue;
            }
            if (c == ',') {
                if (push_field(r, POS(p)) < 0)
                    goto oom;
                st = ST_FIELD;
                p++;
                continue;
            }
            if (c == '\r' || c == '\n') {
                if (push_field(r, POS(p)) < 0)
                    goto oom;
                END_RECORD();
                continue;
            }
            set_malformed(r, "text after the closing quote of a field");
            st = ST_UNQ;
            continue;
        case ST_BOM: /* not reached: csv_feed deals with it */
            st = ST_REC;
            continue;
        }
    }
    if (st != ST_REC && carry_over(r, (const char *)s + cs, len - cs) < 0)
        goto oom;
out:
    r->st = st;
    r->line = line;
    if (p > s)
        r->last_cr = p[-1] == '\r';
    return rc;
oom:
    r->st = st;
    r->line = line;
    return -1;
#undef POS
#undef PREV_CR
#undef END_RECORD
}

int csv_feed(struct csv_reader *r, const char *data, size_t len)
{
    if (r->stop)
        return r->stop;
    if (r->st == ST_BOM) {
        size_t i = 0;
        while (i < len && r->bom_n < 3 && (unsigned char)data[i] == bom[r->bom_n]) {
            r->bom_n++;
            i++;
        }
        if (r->bom_n < 3 && i == len)
            return 0; /* all of it may still be a BOM */
        r->st = ST_REC;
        if (r->bom_n < 3 && r->bom_n > 0) {
            /* not a BOM after all: those bytes are data */
            int rc = scan(r, (const char *)bom, (size_t)r->bom_n);
            if (rc)
                return r->stop = rc;
        }
        data += i;
        len -= i;
    }
    int rc = scan(r, data, len);
    if (rc)
        r->stop = rc;
    return rc;
}

int csv_finish(struct csv_reader *r)
{
    if (r->stop)
        return r->stop;
    if (r->st == ST_BOM) {
        r->st = ST_REC;
        int rc = r->bom_n ? scan(r, (const char *)bom, (size_t)r->bom_n) : 0;
        if (rc)
            return r->stop = rc;
    }
    int rc = 0;
    switch (r->st) {
    case ST_QUO:
        set_malformed(r, "a quoted field is not closed at the end of input");
        rc = emit(r, NULL, 0);
        break;
    case ST_FIELD: /* after a comma: an empty last field */
        r->fstart = r->carried;
        r->fquoted = 0;
        r->fesc = 0;
        /* fallthrough */
    case ST_UNQ:
    case ST_QQ:
        if (push_field(r, r->carried) < 0) {
            rc = -1;
            break;
        }
        rc = emit(r, NULL, 0);
        break;
    default:
        break;
    }
    r->st = ST_REC;
    if (rc)
        r->stop = rc;
    return rc;
}
