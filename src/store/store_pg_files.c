/*
 * store_pg_files.c - the PostgreSQL backend's batch files (see store.h): a batch's
 * raw file lives in the database, in table batch_files as chunks of FILE_CHUNK bytes
 * (seq 0, 1, ...; an empty file is one empty chunk, so a kept file always has chunk
 * 0), so that any node can process, re-ingest or delete a batch another node
 * received. The chunks go in as binary parameters (no hex text doubling them), in one
 * transaction, before the batch record; a reader is a FILE* (fopencookie) that fetches
 * a slice of at most one chunk at a time, so memory stays bounded by a chunk whatever
 * the file's size. Orphans (a file whose record never came) are swept by age. A batch
 * recorded before migration 2 has a `path` and no chunks: its file is still read and
 * removed there, on the node that received it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/pg_internal.h"
#include "util/clock.h"

/* The size of a chunk: large enough that a GB is a thousand round trips, not more, small
 * enough that a reader and a writer hold little. */
#define FILE_CHUNK (1024 * 1024)

/* Run sql (text parameters, or binary where fmt says so; a binary result when
 * binary_result). When the connection was found lost and no transaction was open, it
 * is reopened and the statement sent once more: every statement of this file is safe
 * to send twice (a read, a BEGIN, an idempotent DELETE). The result (caller PQclear()s)
 * or NULL with the error recorded. */
static PGresult *exec_file(struct pg_store *s, const char *what, const char *sql, int n,
                           const char *const *v, const int *len, const int *fmt, int binary_result)
{
    int idle = PQtransactionStatus(s->conn) == PQTRANS_IDLE ||
               PQtransactionStatus(s->conn) == PQTRANS_UNKNOWN;
    for (int attempt = 0;; attempt++) {
        PGresult *r = PQexecParams(s->conn, sql, n, NULL, v, len, fmt, binary_result);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            return r;
        PQclear(r);
        if (attempt > 0 || !idle || PQstatus(s->conn) != CONNECTION_BAD) {
            pg_fail(s, what);
            return NULL;
        }
        PQreset(s->conn);
    }
}

static int cmd_file(struct pg_store *s, const char *what, const char *sql, int n,
                    const char *const *v)
{
    PGresult *r = exec_file(s, what, sql, n, v, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
}

static void rollback_keep_error(struct pg_store *s)
{
    char keep[sizeof s->err];
    memcpy(keep, s->err, sizeof keep);
    PQclear(PQexec(s->conn, "ROLLBACK"));
    memcpy(s->err, keep, sizeof keep);
}

/* Up to cap bytes of fd (fewer only at the end of the file); -1 on error. */
static ssize_t read_full(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int pg_file_keep(struct store *st, const char *batch_id, const char *spool, const char *data_dir,
                 char **path)
{
    struct pg_store *s = PG(st);
    (void)data_dir; /* nothing of the file stays on this node */
    *path = NULL;
    if (PQtransactionStatus(s->conn) == PQTRANS_INTRANS ||
        PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
        snprintf(s->err, sizeof s->err, "keeping the batch file: a transaction is open");
        return -1;
    }
    int fd = open(spool, O_RDONLY | O_CLOEXEC);
    char *buf = malloc(FILE_CHUNK);
    if (fd < 0 || !buf) {
        snprintf(s->err, sizeof s->err, "keeping the batch file: %s: %s", spool,
                 fd < 0 ? strerror(errno) : "out of memory");
        free(buf);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = cmd_file(s, "keeping the batch file", "BEGIN", 0, NULL);
    char seq[24], now[24];
    pg_int(now, clock_wall_ms());
    for (int i = 0; rc == 0; i++) {
        ssize_t n = read_full(fd, buf, FILE_CHUNK);
        if (n < 0) {
            snprintf(s->err, sizeof s->err, "keeping the batch file: reading %s: %s", spool,
                     strerror(errno));
            rc = -1;
            break;
        }
        if (n == 0 && i > 0)
            break; /* the file ended with the last chunk */
        const char *v[4] = {batch_id, pg_int(seq, i), buf, now};
        const int len[4] = {0, 0, (int)n, 0}, fmt[4] = {0, 0, 1, 0};
        /* data as a binary parameter: its type (bytea) comes from the column */
        PGresult *r = exec_file(s, "keeping the batch file",
                                "INSERT INTO batch_files (batch_id, seq, data, created_ms)"
                                " VALUES ($1, $2::int, $3, $4::bigint)",
                                4, v, len, fmt, 0);
        rc = r ? 0 : -1;
        PQclear(r);
        if (n < FILE_CHUNK)
            break;
    }
    free(buf);
    close(fd);
    if (rc == 0)
        rc = cmd_file(s, "keeping the batch file", "COMMIT", 0, NULL);
    else if (PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        rollback_keep_error(s);
    if (rc == 0)
        unlink(spool); /* the database has it now */
    return rc;
}

/* ---- reading ------------------------------------------------------------------------ */

/* A reader fetches slices: the first FIRST_SLICE bytes (a header read, as a DLQ retry
 * does, needs no more), then the rest of each chunk at once. substring() of an
 * uncompressed (EXTERNAL) value reads only the slice's part of it, and length() only
 * its size. */
#define FIRST_SLICE (64 * 1024)

struct reader {
    struct pg_store *s;
    char *batch_id;
    int seq;         /* the chunk the next slice comes from */
    int last;        /* the file's last chunk (-1 until the first slice tells) */
    int64_t off;     /* where in it */
    int want;        /* the next slice's size */
    PGresult *slice; /* the slice being read (binary), or NULL */
    size_t pos, len;
    int eof;
};

/* A column of a binary result that is an int4. */
static int64_t bin_int4(const PGresult *r, int col)
{
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, 0, col);
    return (int64_t)((uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3]);
}

/* Fetch the next slice: 1, 0 when there is none (the end), -1 on error. A file dropped
 * (or kept anew) while it is read is an error, never a shorter file. */
static int fetch(struct reader *r)
{
    PQclear(r->slice);
    r->slice = NULL;
    r->pos = r->len = 0;
    if (r->last >= 0 && r->seq > r->last)
        return 0;
    char seq[24], from[24], len[24];
    const char *v[4] = {r->batch_id, pg_int(seq, r->seq), pg_int(from, r->off + 1),
                        pg_int(len, r->want)};
    PGresult *res = exec_file(r->s, "reading the batch file",
                              "SELECT substring(data from $3::int for $4::int), length(data),"
                              " (SELECT max(seq) FROM batch_files WHERE batch_id = $1)"
                              " FROM batch_files WHERE batch_id = $1 AND seq = $2::int",
                              4, v, NULL, NULL, 1);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    int64_t chunk_len = found ? bin_int4(res, 1) : 0;
    if (!found && r->last < 0) {
        PQclear(res);
        return 0; /* no file at all (pg_file_open says so) */
    }
    if (found && r->last < 0)
        r->last = (int)bin_int4(res, 2);
    if (!found || bin_int4(res, 2) != r->last ||
        (PQgetlength(res, 0, 0) == 0 && r->off < chunk_len)) {
        snprintf(r->s->err, sizeof r->s->err,
                 "reading the batch file: the file of batch %s changed while it was read",
                 r->batch_id);
        PQclear(res);
        return -1;
    }
    r->slice = res;
    r->len = (size_t)PQgetlength(res, 0, 0);
    r->off += (int64_t)r->len;
    if (r->off >= chunk_len) { /* the chunk is read: the next one */
        r->seq++;
        r->off = 0;
    }
    r->want = FILE_CHUNK;
    return 1;
}

static ssize_t reader_read(void *cookie, char *buf, size_t size)
{
    struct reader *r = cookie;
    while (r->pos == r->len) {
        if (r->eof)
            return 0;
        int got = fetch(r);
        if (got < 0) {
            errno = EIO; /* the store's errmsg says what */
            return -1;
        }
        if (got == 0)
            r->eof = 1;
    }
    size_t n = r->len - r->pos < size ? r->len - r->pos : size;
    memcpy(buf, PQgetvalue(r->slice, 0, 0) + r->pos, n);
    r->pos += n;
    return (ssize_t)n;
}

static int reader_close(void *cookie)
{
    struct reader *r = cookie;
    PQclear(r->slice);
    free(r->batch_id);
    free(r);
    return 0;
}

FILE *pg_file_open(struct store *st, const struct batch *b)
{
    struct pg_store *s = PG(st);
    struct reader *r = calloc(1, sizeof *r);
    if (!r || !(r->batch_id = strdup(b->id))) {
        free(r);
        snprintf(s->err, sizeof s->err, "reading the batch file: out of memory");
        return NULL;
    }
    r->s = s;
    r->want = FIRST_SLICE;
    r->last = -1;
    /* The first slice now: a batch whose file is not in the database fails here, not later. */
    int got = fetch(r);
    if (got == 0 && b->path) {
        /* Recorded before the files moved into the database (migration 2): its file is still
         * where the node that received it kept it. */
        reader_close(r);
        FILE *f = fopen(b->path, "rb");
        if (!f)
            snprintf(s->err, sizeof s->err, "the file of batch %s (%s) cannot be read: %s", b->id,
                     b->path, strerror(errno));
        else
            s->err[0] = 0;
        return f;
    }
    if (got == 0)
        snprintf(s->err, sizeof s->err, "the file of batch %s is not in the database", b->id);
    FILE *f = got == 1
                  ? fopencookie(r, "rb",
                                (cookie_io_functions_t){.read = reader_read, .close = reader_close})
                  : NULL;
    if (!f) {
        if (got == 1)
            snprintf(s->err, sizeof s->err, "reading the batch file: %s", strerror(errno));
        reader_close(r);
    } else {
        s->err[0] = 0; /* until a read fails (store.h) */
    }
    return f;
}

int pg_file_drop(struct store *st, const char *batch_id, const char *path)
{
    struct pg_store *s = PG(st);
    const char *v[1] = {batch_id};
    if (cmd_file(s, "removing the batch file", "DELETE FROM batch_files WHERE batch_id = $1", 1,
                 v) < 0)
        return -1;
    if (path && unlink(path) < 0 && errno != ENOENT) { /* recorded before migration 2 */
        snprintf(s->err, sizeof s->err, "removing the file of batch %s (%s): %s", batch_id, path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int pg_file_sweep(struct store *st, int64_t older_than_ms, const char *data_dir)
{
    struct pg_store *s = PG(st);
    (void)data_dir;
    char before[24];
    const char *v[1] = {pg_int(before, older_than_ms)};
    PGresult *r =
        exec_file(s, "file sweep",
                  "WITH gone AS (DELETE FROM batch_files f WHERE f.created_ms < $1::bigint"
                  " AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = f.batch_id)"
                  " RETURNING f.batch_id)"
                  " SELECT count(DISTINCT batch_id) FROM gone",
                  1, v, NULL, NULL, 0);
    if (!r)
        return -1;
    int n = (int)pg_get_int(r, 0, 0);
    PQclear(r);
    return n;
}
