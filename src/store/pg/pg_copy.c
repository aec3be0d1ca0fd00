/*
 * pg_copy.c - rows sent to PostgreSQL with COPY (see pg_internal.h).
 *
 * An INSERT per row costs a round trip per row; a batch of a million rows
 * spends most of its time waiting for them. So inside a transaction the rows
 * of a table (a dataset's rows, DLQ entries, row errors) are queued here as
 * COPY text lines and sent together when anything else is about to be said on
 * the connection: any other statement, a savepoint, COMMIT. The queue is
 * therefore never visible to anyone: a read in the same transaction, the end
 * of a job and COMMIT all see every row first; ROLLBACK (to a savepoint or of
 * the transaction) discards it.
 *
 * COPY itself takes two round trips (the command, then the data), so a table
 * with a single queued row (a lone pushed event) gets the INSERT it would have
 * had. Outside a transaction a queued row is sent at once: the caller is told
 * it is stored when it is.
 *
 * The writer wraps each job of a group commit in a savepoint, which would cost
 * two more round trips a job. So a savepoint is only noted (the queue's length
 * is marked) and sent when a statement comes while it is open: the rows queued
 * before the mark go first, then SAVEPOINT, then the job's. A job that only
 * queued rows is undone by cutting the queue back to its mark; one whose
 * savepoint was sent by ROLLBACK TO. Once a job's savepoint is released, its
 * rows may travel with the next jobs' in one COPY: should that COPY fail, the
 * COMMIT fails and every job of the group is answered 503, never 2xx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_internal.h"
#include "util/buf.h"
#include "util/mem.h"

/* Send the queue when it reaches this: it bounds the memory of a job. Sending it ends the
 * streaming COPY (one table at a time), and the writer and the server then wait for each
 * other; so it is large enough that a batch's DLQ entries and row errors (a 1M-row file
 * with 2% invalid rows makes about 11 MB of them) go once, at the end. */
#define COPY_FLUSH_BYTES (32u << 20)
/* A table's lines stream into an open COPY in parts of this size (see pg_copy_put). */
#define COPY_STREAM_BYTES (256u << 10)

/* The rows queued for one table. */
struct pg_pending {
    char *table; /* quoted name, the slot's key */
    char *cols;  /* "a, b, c" */
    int ncols;
    unsigned bytea;  /* bit i: column i is BYTEA (hex in COPY, binary in the INSERT) */
    struct buf data; /* COPY text lines */
    size_t rows;     /* in data */
    int streamed;    /* lines went into the open COPY already */
    char **first;    /* the first row's values (NULL = SQL NULL), for a lone row's INSERT;
                      * NULL once lines were streamed */
    int *first_len;
};

struct pg_copy {
    struct pg_pending slot[PG_COPY_SLOTS];
    int nslots;
    size_t bytes; /* queued in every slot */
    int open;     /* the slot whose COPY is in progress (its lines stream), -1: none */
    /* Where the queue stood when the open savepoint was noted (s->sp == PG_SP_NOTED). */
    struct {
        int nslots;
        size_t len[PG_COPY_SLOTS], rows[PG_COPY_SLOTS];
    } mark;
};

static int copy_end(struct pg_store *s, const struct pg_pending *p, int abort);

static void first_free(struct pg_pending *p)
{
    for (int i = 0; p->first && i < p->ncols; i++)
        free(p->first[i]);
    free(p->first);
    free(p->first_len);
    p->first = NULL;
    p->first_len = NULL;
}

static void slot_free(struct pg_pending *p)
{
    first_free(p);
    free(p->table);
    free(p->cols);
    buf_release(&p->data);
    memset(p, 0, sizeof *p);
}

void pg_copy_discard(struct pg_store *s)
{
    if (!s->copy)
        return;
    if (s->copy->open >= 0) /* what it sent is undone by the caller's rollback */
        copy_end(s, &s->copy->slot[s->copy->open], 1);
    s->copy->open = -1;
    for (int i = 0; i < s->copy->nslots; i++)
        slot_free(&s->copy->slot[i]);
    s->copy->nslots = 0;
    s->copy->bytes = 0;
}

void pg_copy_free(struct pg_store *s)
{
    pg_copy_discard(s);
    pg_roll_drop_all(s);
    free(s->copy);
    s->copy = NULL;
}

/* One value as a COPY text field: \N for NULL, hex for BYTEA, else the text with the four
 * characters COPY gives a meaning escaped. */
static int put_field(struct buf *b, const char *v, size_t n, int bytea)
{
    static const char hex[] = "0123456789abcdef";
    if (!v)
        return buf_append(b, "\\N", 2);
    if (bytea) {
        int bad = buf_append(b, "\\\\x", 3);
        for (size_t i = 0; i < n && !bad; i++) {
            char h[2] = {hex[(unsigned char)v[i] >> 4], hex[(unsigned char)v[i] & 15]};
            bad = buf_append(b, h, 2);
        }
        return bad;
    }
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = v[i] == '\\'   ? "\\\\"
                          : v[i] == '\n' ? "\\n"
                          : v[i] == '\r' ? "\\r"
                          : v[i] == '\t' ? "\\t"
                                         : NULL;
        if (!esc)
            continue;
        if (buf_append(b, v + from, i - from) < 0 || buf_append(b, esc, 2) < 0)
            return -1;
        from = i + 1;
    }
    return buf_append(b, v + from, n - from);
}

/* Start COPY into p's table: 0, or -1 with the error recorded. */
static int copy_begin(struct pg_store *s, const struct pg_pending *p)
{
    char *sql = sl_malloc(strlen(p->table) + strlen(p->cols) + 32);
    if (!sql) {
        snprintf(s->err, sizeof s->err, "COPY %s: out of memory", p->table);
        return -1;
    }
    sprintf(sql, "COPY %s (%s) FROM STDIN", p->table, p->cols);
    PGresult *r = PQexec(s->conn, sql);
    free(sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        char what[96];
        snprintf(what, sizeof what, "COPY %s", p->table);
        rc = pg_result_fail(s, what, r);
    }
    PQclear(r);
    return rc;
}

/* Send data into the COPY in progress (libpq blocks while the server is behind). */
static int copy_data(struct pg_store *s, const struct pg_pending *p, const char *data, size_t len)
{
    if (len && PQputCopyData(s->conn, data, (int)len) != 1) {
        char what[96];
        snprintf(what, sizeof what, "COPY %s", p->table);
        return pg_fail(s, what);
    }
    return 0;
}

/* End the COPY in progress (abort: with an error, which aborts the transaction) and read its
 * result: 0, or -1 with the first error recorded. */
static int copy_end(struct pg_store *s, const struct pg_pending *p, int abort)
{
    char what[96];
    snprintf(what, sizeof what, "COPY %s", p->table);
    int failed = PQputCopyEnd(s->conn, abort ? "rolled back" : NULL) != 1 ? pg_fail(s, what) : 0;
    PGresult *r;
    while ((r = PQgetResult(s->conn))) {
        if (!failed && !abort && PQresultStatus(r) != PGRES_COMMAND_OK)
            failed = pg_result_fail(s, what, r);
        PQclear(r);
    }
    return failed;
}

/* COPY len bytes of p's lines in one go: the command, the data, the end. */
static int send_copy(struct pg_store *s, const struct pg_pending *p, size_t len)
{
    if (copy_begin(s, p) < 0)
        return -1;
    int sent = copy_data(s, p, p->data.data, len);
    int ended = copy_end(s, p, 0);
    return sent < 0 || ended < 0 ? -1 : 0;
}

/* The lone row's INSERT: one round trip where COPY takes two. */
static int send_insert(struct pg_store *s, struct pg_pending *p)
{
    struct buf sql;
    int formats[32];
    if (p->ncols > 32)
        return send_copy(s, p, p->data.len);
    buf_init(&sql, 1 << 16);
    int bad = buf_printf(&sql, "INSERT INTO %s (%s) VALUES (", p->table, p->cols);
    for (int i = 0; i < p->ncols; i++) {
        bad |= buf_printf(&sql, "%s$%d", i ? ", " : "", i + 1);
        formats[i] = (p->bytea >> i) & 1;
    }
    bad |= buf_appends(&sql, ")");
    int rc = -1;
    if (bad) {
        snprintf(s->err, sizeof s->err, "insert %s: out of memory", p->table);
    } else {
        PGresult *r = PQexecParams(s->conn, sql.data, p->ncols, NULL, (const char *const *)p->first,
                                   p->first_len, formats, 0);
        char what[96];
        snprintf(what, sizeof what, "insert %s", p->table);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pg_result_fail(s, what, r);
        PQclear(r);
    }
    buf_release(&sql);
    return rc;
}

/* Send every queued line; the queue is empty afterwards, sent or not (a failure loses the
 * transaction anyway). */
static int send_all(struct pg_store *s)
{
    int rc = 0;
    struct pg_copy *c = s->copy;
    if (c->open >= 0) { /* the streaming COPY gets its last lines and ends */
        struct pg_pending *p = &c->slot[c->open];
        rc = copy_data(s, p, p->data.data, p->data.len);
        rc = copy_end(s, p, rc < 0) < 0 ? -1 : rc;
        p->rows = 0;
        c->open = -1;
    }
    for (int i = 0; rc == 0 && i < c->nslots; i++) {
        struct pg_pending *p = &c->slot[i];
        if (p->rows)
            rc = p->rows == 1 && p->first ? send_insert(s, p) : send_copy(s, p, p->data.len);
    }
    pg_copy_discard(s);
    return rc;
}

/* Send the lines queued before the noted savepoint, then SAVEPOINT itself; the lines after
 * the mark stay queued (they belong to the job inside it). */
static int send_savepoint(struct pg_store *s)
{
    struct pg_copy *c = s->copy;
    s->sp = PG_SP_SENT;
    if (c && c->open >= 0) { /* streamed before the savepoint was noted: it goes first */
        struct pg_pending *p = &c->slot[c->open];
        int rc = copy_end(s, p, 0);
        c->open = -1;
        if (rc < 0) {
            pg_copy_discard(s);
            return -1;
        }
    }
    for (int i = 0; c && i < c->mark.nslots; i++) {
        struct pg_pending *p = &c->slot[i];
        size_t len = c->mark.len[i];
        if (!c->mark.rows[i])
            continue;
        if (send_copy(s, p, len) < 0) {
            pg_copy_discard(s);
            return -1;
        }
        memmove(p->data.data, p->data.data + len, p->data.len - len);
        p->data.len -= len;
        p->rows -= c->mark.rows[i];
        c->bytes -= len;
        first_free(p); /* its first row was sent */
    }
    PGresult *r = PQexec(s->conn, "SAVEPOINT job");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pg_result_fail(s, "SAVEPOINT job", r);
    PQclear(r);
    return rc;
}

int pg_copy_flush(struct pg_store *s)
{
    if (s->sp == PG_SP_NOTED && send_savepoint(s) < 0)
        return -1;
    if (!s->copy || !s->copy->nslots)
        return 0;
    return send_all(s);
}

/* The queue, made on first use; NULL when out of memory (error recorded). */
static struct pg_copy *copy_state(struct pg_store *s)
{
    if (!s->copy && (s->copy = sl_calloc(1, sizeof *s->copy)))
        s->copy->open = -1;
    if (!s->copy)
        snprintf(s->err, sizeof s->err, "COPY: out of memory");
    return s->copy;
}

int pg_copy_savepoint(struct pg_store *s)
{
    if (!copy_state(s))
        return -1;
    struct pg_copy *c = s->copy;
    c->mark.nslots = c->nslots;
    for (int i = 0; i < c->nslots; i++) {
        c->mark.len[i] = c->slot[i].data.len;
        c->mark.rows[i] = c->slot[i].rows;
    }
    s->sp = PG_SP_NOTED;
    return 0;
}

void pg_copy_rewind(struct pg_store *s)
{
    struct pg_copy *c = s->copy;
    if (!c)
        return;
    while (c->nslots > c->mark.nslots)
        slot_free(&c->slot[--c->nslots]);
    c->bytes = 0;
    for (int i = 0; i < c->nslots; i++) {
        struct pg_pending *p = &c->slot[i];
        p->data.len = c->mark.len[i];
        p->rows = c->mark.rows[i];
        if (!p->rows)
            first_free(p);
        c->bytes += p->data.len;
    }
}

int pg_copy_queued(const struct pg_store *s, const char *table)
{
    for (int i = 0; s->copy && i < s->copy->nslots; i++)
        if (!strcmp(s->copy->slot[i].table, table))
            return 1;
    return 0;
}

/* The slot of table (made on first use, with cols); NULL when out of memory. */
static struct pg_pending *slot_for(struct pg_store *s, const char *table, const char *cols,
                                   int ncols, unsigned bytea)
{
    struct pg_copy *c = s->copy;
    for (int i = 0; i < c->nslots; i++)
        if (!strcmp(c->slot[i].table, table))
            return &c->slot[i];
    if (c->nslots == PG_COPY_SLOTS && pg_copy_flush(s) < 0)
        return NULL;
    struct pg_pending *p = &c->slot[c->nslots];
    p->table = sl_strdup(table);
    p->cols = cols ? sl_strdup(cols) : NULL; /* NULL: pg_copy_queued() was wrong */
    p->ncols = ncols;
    p->bytea = bytea;
    buf_init(&p->data, 1u << 30); /* bounded by COPY_FLUSH_BYTES plus a row */
    if (!p->table || !p->cols) {
        slot_free(p);
        snprintf(s->err, sizeof s->err, "COPY %s: out of memory", table);
        return NULL;
    }
    c->nslots++;
    return p;
}

/* Send slot idx's lines into its open COPY (begun now if need be). */
static int stream(struct pg_store *s, int idx)
{
    struct pg_copy *c = s->copy;
    struct pg_pending *p = &c->slot[idx];
    if (c->open < 0) {
        if (copy_begin(s, p) < 0) {
            pg_copy_discard(s);
            return -1;
        }
        c->open = idx;
    }
    int rc = copy_data(s, p, p->data.data, p->data.len);
    c->bytes -= p->data.len;
    p->data.len = 0;
    p->rows = 0;
    p->streamed = 1;
    first_free(p);
    if (rc < 0)
        pg_copy_discard(s);
    return rc;
}

/* Keep row 1's values for send_insert(). */
static int keep_first(struct pg_pending *p, const char *const *v, const size_t *len)
{
    p->first = sl_calloc((size_t)p->ncols, sizeof *p->first);
    p->first_len = sl_calloc((size_t)p->ncols, sizeof *p->first_len);
    if (!p->first || !p->first_len)
        return -1;
    for (int i = 0; i < p->ncols; i++) {
        if (!v[i])
            continue;
        if (!(p->first[i] = sl_malloc(len[i] + 1)))
            return -1;
        memcpy(p->first[i], v[i], len[i]);
        p->first[i][len[i]] = 0;
        p->first_len[i] = (int)len[i];
    }
    return 0;
}

int pg_copy_put(struct pg_store *s, const char *table, const char *cols, int ncols, unsigned bytea,
                const char *const *v, const size_t *len)
{
    if (!copy_state(s))
        return -1;
    struct pg_pending *p = slot_for(s, table, cols, ncols, bytea);
    if (!p)
        return -1;
    size_t before = p->data.len;
    int bad = p->rows == 0 && !p->streamed && keep_first(p, v, len) < 0;
    for (int i = 0; i < ncols && !bad; i++)
        bad = (i && buf_append(&p->data, "\t", 1) < 0) ||
              put_field(&p->data, v[i], len[i], i < 32 && ((bytea >> i) & 1)) < 0;
    if (bad || buf_append(&p->data, "\n", 1) < 0) {
        pg_copy_discard(s);
        snprintf(s->err, sizeof s->err, "COPY %s: out of memory", table);
        return -1;
    }
    p->rows++;
    s->copy->bytes += p->data.len - before;
    /* Outside a transaction the row is stored before the call returns. (While a COPY
     * streams, the connection says PQTRANS_ACTIVE: that COPY is inside the transaction.) */
    if (s->copy->open < 0 && PQtransactionStatus(s->conn) != PQTRANS_INTRANS)
        return pg_copy_flush(s);
    /* A big job's rows (a batch's) stream into one open COPY, so that PostgreSQL parses them
     * while the next ones are made instead of waiting for each part; not while a savepoint
     * is noted, whose rows must not reach the server before it. */
    int idx = (int)(p - s->copy->slot);
    if (p->data.len >= COPY_STREAM_BYTES && s->sp != PG_SP_NOTED &&
        (s->copy->open < 0 || s->copy->open == idx))
        return stream(s, idx);
    if (s->copy->bytes >= COPY_FLUSH_BYTES)
        return pg_copy_flush(s);
    return 0;
}
