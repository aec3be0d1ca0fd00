/*
 * pg_files.c - the PostgreSQL backend's batch files (see store.h): a batch's
 * raw file lives in the database, in table batch_files as chunks of FILE_CHUNK bytes
 * (seq 0, 1, ...; an empty file is one empty chunk, so a kept file always has chunk
 * 0), so that any node can process, re-ingest or delete a batch another node
 * received. The chunks go in as binary parameters (no hex text doubling them), in one
 * transaction, before the batch record; a reader is a FILE* (fopencookie) that fetches
 * a slice of at most one chunk at a time, so memory stays bounded by a chunk whatever
 * the file's size. Orphans (a file whose record never came) are swept by age. A batch
 * recorded before migration 2 has a `path` and no chunks: its file is still read and
 * removed there, on the node that received it.
 *
 * The node's copy. Reading a 100 MB file back out of the database costs its backend
 * about a second of CPU (TOAST hands it out in 2 KB pieces) on the machine that also
 * runs the pass's inserts. So the node that received an upload keeps its spool, once
 * the database has the file, as data_dir/batches/ID.csv.copy; a pass on that node reads
 * it instead when its sha256 is the batch record's (checked at open, before a byte is
 * handed out; a copy that differs is removed and the database read). A copy is removed
 * when it has been read to its end (the pass is the one reader that reads a file to its
 * end; a retry or re-ingest reads the database), and by the hourly sweep after an hour
 * (a batch another node processed, or one deleted first). Nothing depends on the copy:
 * the database's is the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/pg/pg_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sweep.h"
#include "util/hex.h"
#include "util/mem.h"

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

#define COPY_SUFFIX ".csv.copy"

/* Where this node keeps its copy of batch_id's file: 0, or -1 when there is no place for
 * one (no data_dir, or an id that is not a plain file name). */
static int copy_path(const char *data_dir, const char *batch_id, char *out, size_t cap)
{
    if (!data_dir || !batch_id[0] || strlen(batch_id) >= 64)
        return -1;
    for (const char *c = batch_id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-'))
            return -1;
    int n = snprintf(out, cap, "%s/batches/%s" COPY_SUFFIX, data_dir, batch_id);
    return n > 0 && (size_t)n < cap ? 0 : -1;
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
    *path = NULL; /* the database has the file; this node's copy is only a copy */
    if (PQtransactionStatus(s->conn) == PQTRANS_INTRANS ||
        PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
        snprintf(s->err, sizeof s->err, "keeping the batch file: a transaction is open");
        return -1;
    }
    int fd = open(spool, O_RDONLY | O_CLOEXEC);
    char *buf = sl_malloc(FILE_CHUNK);
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
    char copy[PATH_MAX];
    if (rc == 0 &&
        (copy_path(data_dir, batch_id, copy, sizeof copy) < 0 || rename(spool, copy) < 0))
        unlink(spool); /* the database has it now; the node keeps no copy */
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
    int pending; /* the next slice's query is sent and its answer not read yet */
};

#define SLICE_SQL                                                                                  \
    "SELECT substring(data from $3::int for $4::int), length(data),"                               \
    " (SELECT max(seq) FROM batch_files WHERE batch_id = $1)"                                      \
    " FROM batch_files WHERE batch_id = $1 AND seq = $2::int"

/* Ask for the next slice without waiting (read-ahead: the server reads it while the caller
 * parses this one). Nothing is sent when the file has no more, or when the send fails:
 * fetch() then asks the plain way. */
static void prefetch(struct reader *r)
{
    if (r->last < 0 || r->seq > r->last)
        return;
    char seq[24], from[24], len[24];
    const char *v[4] = {r->batch_id, pg_int(seq, r->seq), pg_int(from, r->off + 1),
                        pg_int(len, r->want)};
    r->pending = PQsendQueryParams(r->s->conn, SLICE_SQL, 4, NULL, v, NULL, NULL, 1) == 1;
}

/* The prefetched slice's result (NULL with the error recorded), the connection drained. */
static PGresult *collect(struct reader *r)
{
    PGresult *res = PQgetResult(r->s->conn), *more;
    while ((more = PQgetResult(r->s->conn)))
        PQclear(more);
    r->pending = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    pg_result_fail(r->s, "reading the batch file", res);
    PQclear(res);
    return NULL;
}

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
    PGresult *res = r->pending
                        ? collect(r)
                        : exec_file(r->s, "reading the batch file", SLICE_SQL, 4, v, NULL, NULL, 1);
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
    if (r->len == FILE_CHUNK) /* reading on (not a header read): ask for the next one now */
        prefetch(r);
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
    if (r->pending) /* the connection is the caller's again */
        PQclear(collect(r));
    PQclear(r->slice);
    free(r->batch_id);
    free(r);
    return 0;
}

/* ---- reading the node's copy ---------------------------------------------------------- */

struct copy_reader {
    int fd;
    char path[PATH_MAX];
};

static ssize_t copy_read(void *cookie, char *buf, size_t size)
{
    struct copy_reader *c = cookie;
    ssize_t n;
    do
        n = read(c->fd, buf, size);
    while (n < 0 && errno == EINTR);
    if (n == 0 && size > 0 && c->path[0]) {
        unlink(c->path); /* read to its end: its pass has what it needs (see the top) */
        c->path[0] = 0;
    }
    return n;
}

static int copy_close(void *cookie)
{
    struct copy_reader *c = cookie;
    close(c->fd);
    free(c);
    return 0;
}

/* fd's content hashed with SHA-256, as lowercase hex; 0 or -1 (a read error). */
static int sha256_fd(int fd, char hex[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *buf = sl_malloc(FILE_CHUNK);
    int rc = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    ssize_t n;
    while (rc == 0 && (n = read(fd, buf, FILE_CHUNK)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            rc = -1;
    }
    unsigned char d[32];
    unsigned int dl = 0;
    if (rc == 0 && EVP_DigestFinal_ex(md, d, &dl) != 1)
        rc = -1;
    if (rc == 0)
        hex_encode(d, dl, hex);
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

/* The node's copy of b's file, open at its first byte, when there is one and its sha256 is
 * the record's; else NULL (the database is read). A copy that differs is removed. */
static FILE *copy_open(struct pg_store *s, const struct batch *b, const char *data_dir)
{
    char path[PATH_MAX];
    if (!b->sha256 || copy_path(data_dir, b->id, path, sizeof path) < 0)
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    long long mtime = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    int checked = !strcmp(s->copy_checked.batch_id, b->id) &&
                  s->copy_checked.dev == (unsigned long long)sb.st_dev &&
                  s->copy_checked.ino == (unsigned long long)sb.st_ino &&
                  s->copy_checked.size == (unsigned long long)sb.st_size &&
                  s->copy_checked.mtime_ns == mtime;
    if (!checked) {
        char hex[65] = "";
        if (sha256_fd(fd, hex) < 0 || strcmp(hex, b->sha256) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
            char m[PATH_MAX + 32];
            log_warn("store",
                     "this node's copy of a batch file differs from the database's:"
                     " removed, the database's is read",
                     "\"batch_id\":\"%s\",\"path\":\"%s\"", b->id,
                     log_json_str(m, sizeof m, path, (size_t)-1));
            close(fd);
            unlink(path);
            return NULL;
        }
        snprintf(s->copy_checked.batch_id, sizeof s->copy_checked.batch_id, "%s", b->id);
        s->copy_checked.dev = (unsigned long long)sb.st_dev;
        s->copy_checked.ino = (unsigned long long)sb.st_ino;
        s->copy_checked.size = (unsigned long long)sb.st_size;
        s->copy_checked.mtime_ns = mtime;
    }
    struct copy_reader *c = sl_calloc(1, sizeof *c);
    FILE *f =
        c ? fopencookie(c, "rb", (cookie_io_functions_t){.read = copy_read, .close = copy_close})
          : NULL;
    if (!f) {
        free(c);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    snprintf(c->path, sizeof c->path, "%s", path);
    s->err[0] = 0;
    return f;
}

FILE *pg_file_open(struct store *st, const struct batch *b, const char *data_dir)
{
    struct pg_store *s = PG(st);
    FILE *copy = copy_open(s, b, data_dir);
    if (copy)
        return copy;
    struct reader *r = sl_calloc(1, sizeof *r);
    if (!r || !(r->batch_id = sl_strdup(b->id))) {
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

int pg_file_drop(struct store *st, const char *batch_id, const char *path, const char *data_dir)
{
    struct pg_store *s = PG(st);
    char copy[PATH_MAX];
    if (copy_path(data_dir, batch_id, copy, sizeof copy) == 0)
        unlink(copy); /* this node's copy, if it has one */
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
    char before[24], dir[PATH_MAX];
    if (data_dir) { /* this node's copies of files it received more than that long ago */
        snprintf(dir, sizeof dir, "%s/batches", data_dir);
        dir_sweep(dir, COPY_SUFFIX, older_than_ms);
    }
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
