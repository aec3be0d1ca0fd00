/*
 * tables.c - the tables a store is made of, in the portable form tables.h
 * describes, and the canonical row checksum. Keep this list in step with the
 * schemas (sqlite_schema.c's and pg_schema.c's migrations): a column missing here
 * is not copied by `sluice migrate`; test_tables.c checks the list against a
 * freshly migrated SQLite store.
 */
#include "store/tables.h"
#include "util/buf.h"
#include "util/hex.h"
#include "util/mem.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TABLE(n, cols)                                                                             \
    {                                                                                              \
        n, cols, ARRAY_SIZE(cols)                                                                  \
    }

/* Column shorthands: Text, Integer, Real, Bytes; K = key, S = serial key, L = local. */
#define T(n)                                                                                       \
    {                                                                                              \
        n, CELL_TEXT, 0                                                                            \
    }
#define I(n)                                                                                       \
    {                                                                                              \
        n, CELL_INT, 0                                                                             \
    }
#define R(n)                                                                                       \
    {                                                                                              \
        n, CELL_REAL, 0                                                                            \
    }
#define B(n)                                                                                       \
    {                                                                                              \
        n, CELL_BYTES, 0                                                                           \
    }
#define TK(n)                                                                                      \
    {                                                                                              \
        n, CELL_TEXT, COL_KEY                                                                      \
    }
#define IK(n)                                                                                      \
    {                                                                                              \
        n, CELL_INT, COL_KEY                                                                       \
    }
#define IS(n)                                                                                      \
    {                                                                                              \
        n, CELL_INT, COL_KEY | COL_SERIAL                                                          \
    }
#define TL(n)                                                                                      \
    {                                                                                              \
        n, CELL_TEXT, COL_LOCAL                                                                    \
    }

static const struct table_col settings[] = {TK("name"), B("value")};
static const struct table_col datasets[] = {TK("name"), T("key"), T("schema"), I("updated_ms")};
static const struct table_col batches[] = {
    TK("id"),
    T("dataset"),
    T("source"),
    T("filename"),
    TL("path"),
    I("bytes"),
    T("sha256"),
    T("status"),
    T("rejection_reason"),
    R("error_threshold_percent"),
    I("row_count_total"),
    I("row_count_inserted"),
    I("row_count_invalid"),
    I("row_count_duplicate"),
    I("attempts"),
    T("worker"),
    I("lease_until_ms"),
    I("heartbeat_ms"),
    I("created_ms"),
    I("updated_ms"),
    I("started_ms"),
    I("finished_ms"),
    T("content_type"),
};
static const struct table_col batch_events[] = {IS("seq"), T("batch_id"), T("status"), I("at_ms"),
                                                T("detail")};
static const struct table_col batch_errors[] = {
    IS("seq"), T("batch_id"), I("row_no"), T("code"), T("field"), T("message"), I("created_ms")};
static const struct table_col dlq[] = {
    IS("id"),      T("dataset"), T("ingest_id"), T("source"),      I("row_no"),
    B("payload"),  T("errors"),  T("codes"),     I("received_ms"), I("updated_ms"),
    I("attempts"), T("status"),  T("batch_id"),
};
static const struct table_col idempotency[] = {TK("dataset"), TK("key"),     T("sha256"),
                                               I("status"),   T("response"), I("created_ms")};
static const struct table_col api_keys[] = {
    TK("id"),        T("name"),       T("role"),         T("prefix"),     B("hash"),
    I("created_ms"), I("expires_ms"), I("last_used_ms"), I("revoked_ms"),
};
static const struct table_col audit[] = {IS("id"),    I("at_ms"),  T("actor"),
                                         T("role"),   T("method"), T("path"),
                                         I("status"), T("remote"), T("request_id")};
static const struct table_col rollup_minute[] = {TK("dataset"), IK("minute"),  I("received"),
                                                 I("accepted"), I("rejected"), I("duplicate")};
static const struct table_col rollup_hour[] = {
    TK("dataset"), IK("hour"),     I("received"), I("accepted"),
    I("rejected"), I("duplicate"), I("batches"),  I("batches_failed"),
};
static const struct table_col rollup_day[] = {
    TK("dataset"), IK("day"),      I("received"), I("accepted"),
    I("rejected"), I("duplicate"), I("batches"),  I("batches_failed"),
};
static const struct table_col rollup_errors[] = {IK("hour"),       TK("dataset"), TK("code"),
                                                 I("occurrences"), I("batches"),  T("sample"),
                                                 I("last_seen_ms")};
static const struct table_col rollup_ledger[] = {
    IS("id"),      T("dataset"),   I("at_ms"),   T("batch_id"),       I("received"), I("accepted"),
    I("rejected"), I("duplicate"), I("batches"), I("batches_failed"), T("codes"),    I("undone"),
};
static const struct table_col dataset_activity[] = {TK("dataset"), I("last_received_ms"),
                                                    I("last_error_ms")};
static const struct table_col alerts[] = {
    IS("id"),         T("fingerprint"),      T("rule"),          T("severity"),   T("labels"),
    T("summary"),     T("details"),          T("state"),         I("started_ms"), I("updated_ms"),
    I("resolved_ms"), I("last_notified_ms"), I("notifications"),
};
static const struct table_col alert_events[] = {IS("seq"), I("alert_id"), I("at_ms"), T("event"),
                                                T("detail")};
static const struct table_col alert_outbox[] = {
    IS("id"),        I("alert_id"), T("receiver"), T("event"),      T("body"),
    I("created_ms"), I("attempts"), I("next_ms"),  T("last_error"),
};
static const struct table_col job_runs[] = {
    IS("id"),        T("job"),        I("scheduled_ms"), I("attempt"),
    T("trigger"),    T("state"),      T("reason"),       T("node"),
    I("created_ms"), I("started_ms"), I("ended_ms"),     I("lease_until_ms"),
    I("items"),      T("error"),      T("idem_key"),     I("cancel_requested"),
};
static const struct table_col job_state[] = {TK("job"), I("paused"), I("last_due_ms"), T("cron"),
                                             I("updated_ms")};

/* `datasets` comes before `batches`: the dataset tables are loaded between them, so a
 * backend can work out where each batch's rows are when batches are loaded. */
const struct table_def store_tables[] = {
    TABLE("settings", settings),
    TABLE("datasets", datasets),
    TABLE("batches", batches),
    TABLE("batch_events", batch_events),
    TABLE("batch_errors", batch_errors),
    TABLE("dlq", dlq),
    TABLE("idempotency", idempotency),
    TABLE("api_keys", api_keys),
    TABLE("audit", audit),
    TABLE("rollup_minute", rollup_minute),
    TABLE("rollup_hour", rollup_hour),
    TABLE("rollup_day", rollup_day),
    TABLE("rollup_errors", rollup_errors),
    TABLE("dataset_activity", dataset_activity),
    TABLE("rollup_ledger", rollup_ledger),
    TABLE("alerts", alerts),
    TABLE("alert_events", alert_events),
    TABLE("alert_outbox", alert_outbox),
    TABLE("job_runs", job_runs),
    TABLE("job_state", job_state),
};
const size_t store_ntables = ARRAY_SIZE(store_tables);

static const struct table_col ds_system[] = {
    IS("_id"), T("_ingest_id"), T("_source"), T("_received_at"), T("_extra"), T("_batch_id"),
};

/* A dataset's table_def and its columns in one allocation; the name follows them. */
struct table_def *table_def_dataset(const char *name, const struct schema *s)
{
    size_t nsys = ARRAY_SIZE(ds_system), nf = schema_nfields(s), n = nsys + nf;
    size_t namelen = strlen(name) + sizeof "ds_";
    struct table_def *t = sl_malloc(sizeof *t + n * sizeof(struct table_col) + namelen);
    if (!t)
        return NULL;
    struct table_col *cols = (struct table_col *)(t + 1);
    char *tname = (char *)(cols + n);
    snprintf(tname, namelen, "ds_%s", name);
    memcpy(cols, ds_system, sizeof ds_system);
    for (size_t i = 0; i < nf; i++) {
        static const enum cell_type by_field[] = {
            [FT_STRING] = CELL_TEXT,
            [FT_INTEGER] = CELL_INT,
            [FT_NUMBER] = CELL_REAL,
            [FT_BOOLEAN] = CELL_INT,
        };
        cols[nsys + i] =
            (struct table_col){schema_field_name(s, i), by_field[schema_field_type(s, i)], 0};
    }
    t->name = tname;
    t->cols = cols;
    t->ncols = n;
    return t;
}

void table_def_free(struct table_def *t)
{
    free(t);
}

int table_key_columns(struct buf *b, const struct schema *s, const struct schema_key *k)
{
    int bad = 0;
    for (size_t i = 0; i < k->n; i++)
        bad |= buf_printf(b, "%s\"%s\"", i ? ", " : "", schema_field_name(s, k->field[i]));
    return bad ? -1 : 0;
}

int table_col_index(const struct table_def *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- the canonical checksum ------------------------------------------------------ */

int table_sum_init(struct table_sum *s)
{
    memset(s, 0, sizeof *s);
    s->md = EVP_MD_CTX_new();
    if (!s->md || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
        table_sum_release(s);
        return -1;
    }
    return 0;
}

static void put_u64(unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

int table_sum_row(struct table_sum *s, const struct table_def *t, const struct cell *row)
{
    EVP_MD_CTX *md = s->md;
    int ok = 1;
    for (size_t c = 0; c < t->ncols; c++) {
        if (t->cols[c].flags & COL_LOCAL)
            continue;
        const struct cell *v = &row[c];
        unsigned char head[9] = {(unsigned char)"NIRTB"[v->type]};
        uint64_t bits;
        switch (v->type) {
        case CELL_NULL:
            ok &= EVP_DigestUpdate(md, head, 1);
            break;
        case CELL_INT:
            put_u64(head + 1, (uint64_t)v->i);
            ok &= EVP_DigestUpdate(md, head, 9);
            break;
        case CELL_REAL: {
            double d = v->d == 0 ? 0.0 : v->d; /* SQLite does not keep -0 */
            memcpy(&bits, &d, sizeof bits);
            put_u64(head + 1, bits);
            ok &= EVP_DigestUpdate(md, head, 9);
            break;
        }
        case CELL_TEXT:
        case CELL_BYTES:
            put_u64(head + 1, (uint64_t)v->n);
            ok &= EVP_DigestUpdate(md, head, 9);
            ok &= v->n == 0 || EVP_DigestUpdate(md, v->p, v->n);
            break;
        }
    }
    s->rows++;
    return ok ? 0 : -1;
}

int table_sum_final(struct table_sum *s)
{
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(s->md, s->sha256, &n) == 1 && n == sizeof s->sha256;
    table_sum_release(s);
    return ok ? 0 : -1;
}

void table_sum_release(struct table_sum *s)
{
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
}

void table_sum_hex(const struct table_sum *s, size_t n, char *out)
{
    hex_encode(s->sha256, n < sizeof s->sha256 ? n : sizeof s->sha256, out);
}
