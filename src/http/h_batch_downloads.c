/*
 * h_batch_downloads.c - what a batch gives back: its row errors (JSON or CSV) and its
 * original file, both streamed in bounded pieces (http_reply_stream), so a download of any
 * size costs one piece of memory.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "http/handlers.h"
#include "http/params.h"
#include "http/router.h"
#include "config/catalog.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/hex.h"
#include "util/log.h"
#include "util/mem.h"

/*
 * Row errors as JSON, or CSV (?format=csv or Accept: text/csv), streamed: pages of
 * ERRORS_PAGE errors are read (keyset on row number and insertion order) and sent one
 * after the other, so a batch with millions of errors costs one page of memory. Each
 * page is its own read: a batch reprocessed during the download changes what the
 * later pages show.
 */
#define ERRORS_PAGE 2000

struct err_stream {
    struct http_conn *conn;
    char *batch_id; /* owned */
    int csv;
    int64_t after_row, after_seq;
    size_t sent; /* items so far */
    int started;
};

static void err_stream_done(void *arg)
{
    struct err_stream *e = arg;
    free(e->batch_id);
    free(e);
}

static void csv_quoted(struct buf *out, const char *s)
{
    /* RFC 4180: quote, double the quotes */
    buf_appends(out, "\"");
    for (const char *p = s ? s : ""; *p; p++)
        buf_append(out, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
    buf_appends(out, "\"");
}

static int err_stream_fill(void *arg, struct buf *out)
{
    struct err_stream *e = arg;
    if (!e->started) {
        e->started = 1;
        if (e->csv) {
            buf_appends(out, "batch_id,row_number,error_code,field,error_message,created_at\r\n");
        } else {
            json_t *j = json_string(e->batch_id);
            char *id = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
            buf_printf(out, "{\"batch_id\":%s,\"items\":[", id ? id : "null");
            free(id);
            json_decref(j);
        }
    }
    json_t *page = NULL;
    if (store_batch_errors_list(http_conn_store(e->conn), e->batch_id, e->after_row, e->after_seq,
                                ERRORS_PAGE, &page) < 0)
        return -1;
    size_t i;
    json_t *it;
    json_array_foreach(page, i, it)
    {
        char t[32];
        e->after_row = json_integer_value(json_object_get(it, "row_number"));
        e->after_seq = json_integer_value(json_object_get(it, "seq"));
        clock_rfc3339(json_integer_value(json_object_get(it, "created_ms")), t, sizeof t);
        if (e->csv) {
            buf_printf(out, "%s,%lld,%s,", e->batch_id, (long long)e->after_row,
                       json_string_value(json_object_get(it, "error_code")));
            csv_quoted(out, json_string_value(json_object_get(it, "field")));
            buf_appends(out, ",");
            csv_quoted(out, json_string_value(json_object_get(it, "error_message")));
            buf_printf(out, ",%s\r\n", t);
        } else {
            json_object_del(it, "created_ms");
            json_object_del(it, "seq");
            json_object_set_new(it, "created_at", json_string(t));
            char *txt = json_dumps(it, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (e->sent)
                buf_appends(out, ",");
            buf_appends(out, txt ? txt : "null");
            free(txt);
        }
        e->sent++;
    }
    size_t n = json_array_size(page);
    json_decref(page);
    if (n == ERRORS_PAGE)
        return 1;
    if (!e->csv)
        buf_appends(out, "],\"next_cursor\":null}");
    return 0;
}

void h_batches_errors(struct http_conn *c, struct http_request *r)
{
    struct batch b;
    if (h_get_batch(c, r->params[0], &b) != 0)
        return;
    char fmt[16] = "";
    hq_str(r, "format", fmt, sizeof fmt);
    const char *accept = http_header(r, "accept");
    struct err_stream *e = sl_calloc(1, sizeof *e);
    if (!e || !(e->batch_id = sl_strdup(b.id))) {
        free(e);
        batch_release(&b);
        http_reply_error(c, ERR_INTERNAL, "out of memory");
        return;
    }
    e->conn = c;
    e->csv = !strcmp(fmt, "csv") || (accept && strstr(accept, "text/csv"));
    batch_release(&b);
    http_reply_stream(c, 200, e->csv ? "text/csv; charset=utf-8" : "application/json", NULL,
                      err_stream_fill, err_stream_done, e);
}

/*
 * The original file, streamed: read FILE_PIECE bytes at a time from the store
 * (store_file_open) through a connection of the download's own (store.h: nothing else
 * may use the one a read is under way on), hashed on the way. The headers carry the
 * sha256 the upload recorded (Repr-Digest, RFC 9530, and the ETag); if what was read
 * does not hash to it, the answer is cut short (no final chunk), so a client never takes
 * a damaged file for a whole one.
 */
#define FILE_PIECE (64 * 1024)

struct file_stream {
    struct store *st; /* the download's own connection, or NULL (SQLite needs none) */
    FILE *f;
    EVP_MD_CTX *md;
    char sha256[65]; /* the record's */
    char batch_id[64];
};

static void file_stream_done(void *arg)
{
    struct file_stream *d = arg;
    if (d->f)
        fclose(d->f);
    store_close(d->st);
    EVP_MD_CTX_free(d->md);
    free(d);
}

static int file_stream_fill(void *arg, struct buf *out)
{
    struct file_stream *d = arg;
    char piece[FILE_PIECE];
    size_t n = fread(piece, 1, sizeof piece, d->f);
    if (n && (buf_append(out, piece, n) < 0 || EVP_DigestUpdate(d->md, piece, n) != 1))
        return -1;
    if (n == sizeof piece)
        return 1;
    unsigned char dig[32];
    char hex[65];
    unsigned len = 0;
    if (ferror(d->f) || EVP_DigestFinal_ex(d->md, dig, &len) != 1) {
        log_warn("batch", "batch file download cut short: read error", "\"batch_id\":\"%s\"",
                 d->batch_id);
        return -1;
    }
    hex_encode(dig, len, hex);
    if (strcmp(hex, d->sha256) != 0) {
        log_warn("batch", "batch file download cut short: the file's sha256 is not the record's",
                 "\"batch_id\":\"%s\",\"sha256\":\"%s\",\"recorded\":\"%s\"", d->batch_id, hex,
                 d->sha256);
        return -1;
    }
    return 0;
}

/* Content-Disposition for name (RFC 6266): a quoted ASCII fallback, and filename* when the
 * name is not plain ASCII. */
static void disposition(const char *name, char *out, size_t cap)
{
    char ascii[256], ext[768];
    size_t a = 0, e = 0;
    int plain = 1;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        int safe = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '%';
        plain &= (*p >= 0x20 && *p < 0x7f);
        if (a + 1 < sizeof ascii)
            ascii[a++] = (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') ? (char)*p : '_';
        if (e + 4 < sizeof ext)
            e += (size_t)(safe && !strchr("'*;,", *p)
                              ? snprintf(ext + e, sizeof ext - e, "%c", *p)
                              : snprintf(ext + e, sizeof ext - e, "%%%02X", *p));
    }
    ascii[a] = ext[e] = 0;
    if (plain)
        snprintf(out, cap, "Content-Disposition: attachment; filename=\"%s\"\r\n", ascii);
    else
        snprintf(out, cap,
                 "Content-Disposition: attachment; filename=\"%s\"; filename*=UTF-8''%s\r\n", ascii,
                 ext);
}

/* GET /api/v1/batches/{id}/file */
void h_batches_file(struct http_conn *c, struct http_request *r)
{
    struct batch b;
    if (h_get_batch(c, r->params[0], &b) != 0)
        return;
    const struct http_app *app = http_conn_app(c);
    struct catalog *cat = http_conn_catalog(c);
    struct file_stream *d = sl_calloc(1, sizeof *d);
    char err[256] = "out of memory", hdr[1400], dispo[1100], b64[64];
    unsigned char dig[32];
    int bad_sha = !b.sha256 || hex_decode(b.sha256, dig, sizeof dig) < 0;
    if (!d || !(d->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) != 1)
        goto fail;
    if (bad_sha) {
        snprintf(err, sizeof err, "batch %s has no sha256 recorded", b.id);
        goto fail;
    }
    snprintf(d->sha256, sizeof d->sha256, "%s", b.sha256);
    snprintf(d->batch_id, sizeof d->batch_id, "%s", b.id);
    /* A file that is a file is read as one; one kept in the database (PostgreSQL) is read
     * through a connection of the stream's own, not the loop's, which other requests use */
    struct store *loop_st = http_conn_store(c);
    if (!store_files_read_through_conn(loop_st)) {
        d->f = store_file_open(loop_st, &b, cat->cfg.data_dir);
    } else if ((d->st = store_open(app->store_uri, 1, err, sizeof err)) != NULL) {
        d->f = store_file_open(d->st, &b, cat->cfg.data_dir);
        loop_st = d->st;
    } else {
        goto fail;
    }
    if (!d->f) {
        snprintf(err, sizeof err, "%s", store_errmsg(loop_st));
        file_stream_done(d);
        catalog_release(cat);
        http_reply_error(c, ERR_NOT_FOUND, "the file of batch %s cannot be read: %s", b.id, err);
        batch_release(&b);
        return;
    }
    EVP_EncodeBlock((unsigned char *)b64, dig, 32);
    disposition(b.filename && *b.filename ? b.filename : b.id, dispo, sizeof dispo);
    snprintf(hdr, sizeof hdr, "Repr-Digest: sha-256=:%s:\r\nETag: \"%s\"\r\n%s", b64, b.sha256,
             dispo);
    /* the upload's Content-Type; text/csv for a batch that does not have one (a multipart
     * file part without one, or a batch recorded before it was kept) */
    char ctype[256];
    snprintf(ctype, sizeof ctype, "%s", b.content_type ? b.content_type : "text/csv");
    catalog_release(cat);
    batch_release(&b);
    http_reply_stream(c, 200, ctype, hdr, file_stream_fill, file_stream_done, d);
    return;
fail:
    if (d)
        file_stream_done(d);
    catalog_release(cat);
    http_reply_error(c, ERR_UNAVAILABLE, "the file of batch %s cannot be read: %s", b.id, err);
    batch_release(&b);
}
