/*
 * ingest.c - see ingest.h.
 */
#include "ingest/ingest.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/rows.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/jsontext.h"
#include "util/utf8.h"
#include "util/hex.h"
#include "util/mem.h"

/* 80 random bits for an id: a per-thread xorshift generator seeded once from
 * OpenSSL (ids must be unique, not secret; RAND_bytes per request was ~6% of
 * the single-row profile). */
static void id_random(unsigned char out[10])
{
    static __thread uint64_t st[2];
    if (!st[0] && !st[1]) {
        if (RAND_bytes((unsigned char *)st, sizeof st) != 1 || (!st[0] && !st[1])) {
            st[0] = (uint64_t)clock_mono_ns() | 1;
            st[1] = (uint64_t)(uintptr_t)&st;
        }
    }
    for (int k = 0; k < 2; k++) { /* xorshift128+ */
        uint64_t x = st[0], y = st[1];
        st[0] = y;
        x ^= x << 23;
        st[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
        uint64_t v = st[1] + y;
        memcpy(out + 5 * k, &v, 5);
    }
}

void ingest_new_id(const char *prefix, char *out, size_t cap)
{
    /* Crockford base32 of 48 bits of milliseconds and 80 random bits: sorts by time. */
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned char rnd[10];
    uint64_t ms = (uint64_t)clock_wall_ms();
    char id[27];
    id_random(rnd);
    for (int i = 9; i >= 0; i--) {
        id[i] = b32[ms & 31];
        ms >>= 5;
    }
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 5; i++)
        hi = hi << 8 | rnd[i];
    for (int i = 5; i < 10; i++)
        lo = lo << 8 | rnd[i];
    for (int i = 17; i >= 10; i--) {
        id[i] = b32[hi & 31];
        hi >>= 5;
    }
    for (int i = 25; i >= 18; i--) {
        id[i] = b32[lo & 31];
        lo >>= 5;
    }
    id[26] = 0;
    snprintf(out, cap, "%s_%s", prefix, id);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

char *ingest_codes(const struct row_errors *e)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_appends(&b, ",");
    for (size_t i = 0; i < e->n; i++) {
        buf_appends(&b, err_name(e->v[i].code));
        buf_appends(&b, ",");
    }
    return buf_steal(&b, NULL);
}

static int add_row(struct ingest *in, size_t *cap)
{
    if (in->nrows == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct ingest_row *nr = sl_realloc(in->rows, nc * sizeof *nr);
        if (!nr)
            return -1;
        in->rows = nr;
        *cap = nc;
    }
    memset(&in->rows[in->nrows], 0, sizeof in->rows[0]);
    in->rows[in->nrows].row = (int64_t)in->nrows + 1;
    in->nrows++;
    return 0;
}

enum sluice_err ingest_prepare(struct ingest *in, const struct dataset_config *ds,
                               const struct sluice_config *cfg, enum ingest_format fmt, char *body,
                               size_t body_len, const char *source, const char *idem_key, char *msg,
                               size_t msgcap)
{
    struct row_span *spans = NULL;
    size_t nspans = 0, cap = 0;
    enum sluice_err e;

    in->job.apply = ingest_apply;
    in->ds = ds;
    in->body = body;
    in->body_len = body_len;
    in->source = sl_strdup(source && *source ? source : "api");
    in->idem_key = idem_key ? sl_strdup(idem_key) : NULL;
    if (!in->source || (idem_key && !in->idem_key)) {
        snprintf(msg, msgcap, "out of memory");
        return ERR_INTERNAL;
    }
    in->idem_ttl_ms = (int64_t)cfg->idempotency_ttl_ms;
    in->max_errors = (size_t)cfg->limits.max_errors_per_response;
    in->received_ms = clock_wall_ms();
    clock_rfc3339(in->received_ms, in->received_at, sizeof in->received_at);
    ingest_new_id("ing", in->ingest_id, sizeof in->ingest_id);
    if (in->idem_key)
        sha256_hex(body, body_len, in->body_sha256);

    if (fmt == INGEST_JSON)
        e = rows_split_json(body, body_len, cfg->limits.max_json_depth, &spans, &nspans, msg,
                            msgcap);
    else
        e = rows_split_ndjson(body, body_len, &spans, &nspans);
    if (e == ERR_MALFORMED_JSON && nspans == 0 && body_len == strspn(body, " \t\r\n")) {
        nspans = 0; /* an empty body is "no rows", below */
        e = SLUICE_OK;
    }
    if (e != SLUICE_OK) {
        if (fmt == INGEST_JSON && e == ERR_MALFORMED_JSON && !utf8_valid(body, body_len)) {
            snprintf(msg, msgcap, "the body is not valid UTF-8");
            e = ERR_INVALID_UTF8;
        }
        goto out;
    }
    if (nspans == 0) {
        snprintf(msg, msgcap, "the body holds no rows");
        e = ERR_BAD_REQUEST;
        goto out;
    }
    /* Every row's slot at once (their number is known): growing by doubling was a few
     * large reallocations per request, each making malloc consolidate its free lists. */
    in->rows = sl_malloc(nspans * sizeof *in->rows);
    if (!in->rows) {
        snprintf(msg, msgcap, "out of memory");
        e = ERR_INTERNAL;
        goto out;
    }
    cap = nspans;
    for (size_t i = 0; i < nspans; i++) {
        if (add_row(in, &cap) < 0) {
            snprintf(msg, msgcap, "out of memory");
            e = ERR_INTERNAL;
            goto out;
        }
        struct ingest_row *r = &in->rows[in->nrows - 1];
        r->off = spans[i].off;
        r->len = spans[i].len;
        const char *p = body + r->off;
        int syntax = 0;
        char why[256];
        enum sluice_err re;
        json_t *obj = NULL;
        if (fmt == INGEST_NDJSON && r->len > cfg->limits.max_row_bytes) {
            re = ERR_ROW_TOO_LARGE;
            snprintf(why, sizeof why, "the line is %zu bytes; limits.max_row_bytes is %llu", r->len,
                     (unsigned long long)cfg->limits.max_row_bytes);
        } else {
            re = rows_parse(p, r->len, cfg->limits.max_row_bytes, cfg->limits.max_json_depth, &obj,
                            &syntax, why, sizeof why);
        }
        if (re == ERR_INTERNAL || (re != SLUICE_OK && syntax && fmt == INGEST_JSON)) {
            /* The document itself is not JSON: the whole request is refused. */
            snprintf(msg, msgcap, "row %lld: %s", (long long)r->row, why);
            e = re;
            goto out;
        }
        if (re != SLUICE_OK) {
            if (fmt == INGEST_NDJSON)
                row_errors_add(&r->errs, re, NULL, "line %lld: %s", (long long)spans[i].line, why);
            else
                row_errors_add(&r->errs, re, NULL, "%s", why);
            r->outcome = ROW_REJECTED;
        } else if (schema_validate(ds->schema, obj, &r->errs, &r->extra) > 0) {
            json_decref(obj);
            r->outcome = ROW_REJECTED;
        } else {
            r->obj = obj;
        }
        if (r->errs.lost) { /* the row's errors could not all be recorded */
            snprintf(msg, msgcap, "out of memory");
            e = ERR_INTERNAL;
            goto out;
        }
    }
    in->job.nrows = in->nrows;
    e = SLUICE_OK;
out:
    free(spans);
    return e;
}

static void count_rejected(struct ingest *in, struct ingest_row *r)
{
    in->rejected++;
    in->rejected_by_code[r->errs.n ? r->errs.v[0].code : ERR_INTERNAL]++;
}

static char *build_response(struct ingest *in)
{
    json_t *errs = json_array();
    size_t nerr = 0;
    int truncated = 0;
    for (size_t i = 0; i < in->nrows; i++) {
        struct ingest_row *r = &in->rows[i];
        if (r->outcome != ROW_REJECTED)
            continue;
        for (size_t k = 0; k < r->errs.n; k++) {
            if (nerr >= in->max_errors) {
                truncated = 1;
                break;
            }
            struct row_error *re = &r->errs.v[k];
            if (json_array_append_new(errs,
                                      json_pack("{s:I,s:s?,s:s,s:s}", "row", (json_int_t)r->row,
                                                "field", re->field, "code", err_name(re->code),
                                                "message", re->message ? re->message : "")) != 0) {
                json_decref(errs); /* out of memory: no answer rather than a short one */
                return NULL;
            }
            nerr++;
        }
    }
    json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:o,s:b}", "ingest_id", in->ingest_id, "received",
                          (json_int_t)in->nrows, "accepted", (json_int_t)in->accepted, "rejected",
                          (json_int_t)in->rejected, "duplicates", (json_int_t)in->duplicates,
                          "errors", errs, "errors_truncated", truncated);
    char *txt = jsontext_dump(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return txt;
}

/* The request's counts and error codes into the rollups (the same transaction). */
static int add_rollup(struct ingest *in, struct store *st)
{
    struct rollup_code codes[ERR__COUNT];
    int64_t count[ERR__COUNT] = {0};
    const char *sample[ERR__COUNT] = {0};
    size_t n = 0;
    for (size_t i = 0; i < in->nrows; i++) {
        struct ingest_row *r = &in->rows[i];
        if (r->outcome != ROW_REJECTED)
            continue;
        for (size_t k = 0; k < r->errs.n; k++) {
            enum sluice_err c = r->errs.v[k].code;
            if (!count[c]++)
                sample[c] = r->errs.v[k].message;
        }
    }
    for (int c = 0; c < ERR__COUNT; c++)
        if (count[c])
            codes[n++] =
                (struct rollup_code){err_name((enum sluice_err)c), count[c], sample[c], 0, 0};
    struct rollup_delta d = {.dataset = in->ds->name,
                             .at_ms = in->received_ms,
                             .received = (int64_t)in->nrows,
                             .accepted = (int64_t)in->accepted,
                             .rejected = (int64_t)in->rejected,
                             .duplicate = (int64_t)in->duplicates,
                             .codes = codes,
                             .ncodes = n};
    return store_rollup_add(st, &d);
}

int ingest_apply(struct wjob *job, struct store *st)
{
    struct ingest *in = (struct ingest *)job;
    const struct dataset_config *ds = in->ds;

    if (in->idem_key) {
        struct idem_record rec = {0};
        int r = store_idem_get(st, ds->name, in->idem_key, &rec);
        if (r < 0)
            return -1;
        if (r == 0 && rec.created_ms < in->received_ms - in->idem_ttl_ms) {
            free(rec.response); /* expired: the key is free again (overwritten below) */
            r = 1;
        }
        if (r == 0) {
            if (strcmp(rec.sha256, in->body_sha256) == 0) {
                in->status = rec.status;
                in->response = rec.response;
                in->replayed = 1;
            } else {
                free(rec.response);
                in->status = 409;
                json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code",
                                      err_name(ERR_IDEMPOTENCY_KEY_REUSED), "message",
                                      "this Idempotency-Key was used with a different body");
                in->response = jsontext_dump(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
                json_decref(j);
                if (!in->response)
                    return -1; /* out of memory */
            }
            return 0;
        }
    }

    struct row_meta m = {in->ingest_id, in->source, in->received_at, NULL};
    in->accepted = in->rejected = in->duplicates = 0;
    in->busy = 0;
    memset(in->rejected_by_code, 0, sizeof in->rejected_by_code);
    for (size_t i = 0; i < in->nrows; i++) {
        struct ingest_row *r = &in->rows[i];
        if (r->outcome == ROW_REJECTED) {
            count_rejected(in, r);
            continue;
        }
        enum row_result res;
        if (store_row_put(st, ds, &m, r->obj, r->extra, &res) < 0) {
            in->busy = store_busy(st);
            return -1;
        }
        if (res != ROW_DUPLICATE) {
            r->outcome = ROW_STORED;
            in->accepted++;
        } else if (ds->on_duplicate == ON_DUP_SKIP) {
            r->outcome = ROW_SKIPPED;
            in->duplicates++;
        } else {
            schema_key_duplicate(ds->schema, &ds->key_fields, ds->key, r->obj, NULL, &r->errs);
            if (r->errs.lost)
                return -1; /* out of memory */
            r->outcome = ROW_REJECTED;
            count_rejected(in, r);
        }
    }
    for (size_t i = 0; i < in->nrows; i++) {
        struct ingest_row *r = &in->rows[i];
        if (r->outcome != ROW_REJECTED)
            continue;
        json_t *ej = row_errors_to_json(&r->errs);
        char *errs = jsontext_dump(ej, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *codes = ingest_codes(&r->errs);
        json_decref(ej);
        struct dlq_new d = {.dataset = ds->name,
                            .ingest_id = in->ingest_id,
                            .source = in->source,
                            .row = r->row,
                            .payload = in->body + r->off,
                            .payload_len = r->len,
                            .errors_json = errs,
                            .codes = codes,
                            .received_ms = in->received_ms};
        int rc = errs && codes ? store_dlq_add(st, &d, NULL) : -1; /* -1: out of memory */
        free(errs);
        free(codes);
        if (rc < 0)
            return -1;
    }
    if (add_rollup(in, st) < 0)
        return -1;
    in->status = in->rejected == 0 ? 200 : in->rejected == in->nrows ? 422 : 207;
    in->response = build_response(in);
    if (!in->response)
        return -1;
    if (in->idem_key) {
        int r = store_idem_put(st, ds->name, in->idem_key, in->body_sha256, in->status,
                               in->response, in->received_ms, in->received_ms - in->idem_ttl_ms);
        if (r != 0) { /* 1: another node's request with this key committed first */
            free(in->response);
            in->response = NULL;
            return r < 0 ? -1 : WJOB_AGAIN;
        }
    }
    return 0;
}

void ingest_release(struct ingest *in)
{
    for (size_t i = 0; i < in->nrows; i++) {
        json_decref(in->rows[i].obj);
        json_decref(in->rows[i].extra);
        row_errors_release(&in->rows[i].errs);
    }
    free(in->rows);
    free(in->body);
    free(in->source);
    free(in->idem_key);
    free(in->response);
    in->rows = NULL;
    in->body = in->source = in->idem_key = in->response = NULL;
}
