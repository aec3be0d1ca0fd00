/*
 * sqlite_files.c - the SQLite backend's batch files (see store.h): one node, so
 * a batch's raw file stays a plain file, data_dir/batches/<id>.csv, named by the
 * batch's `path`. Keeping it is a rename of the caller's spool (same directory) and
 * an fsync of the directory, so the name is as durable as the bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite/sqlite_internal.h"
#include "util/mem.h"

int sqlite_file_keep(struct store *st, const char *batch_id, const char *spool,
                     const char *data_dir, char **path)
{
    struct sqlite_store *s = SQ(st);
    char dir[PATH_MAX], final[PATH_MAX];
    *path = NULL;
    snprintf(dir, sizeof dir, "%s/batches", data_dir);
    if ((size_t)snprintf(final, sizeof final, "%s/%s.csv", dir, batch_id) >= sizeof final) {
        snprintf(s->err, sizeof s->err, "keeping the batch file: the path is too long");
        return -1;
    }
    /* The bytes first, then the name (PostgreSQL needs neither: its COMMIT makes its copy
     * durable, and the spool is thrown away). */
    int fd = open(spool, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        snprintf(s->err, sizeof s->err, "keeping the batch file %s: syncing %s: %s", final, spool,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    if (rename(spool, final) < 0) {
        snprintf(s->err, sizeof s->err, "keeping the batch file %s: %s", final, strerror(errno));
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int synced = dfd >= 0 && fsync(dfd) == 0; /* the rename itself is durable too */
    if (dfd >= 0)
        close(dfd);
    if (!synced || !(*path = sl_strdup(final))) {
        snprintf(s->err, sizeof s->err, "keeping the batch file %s: %s", final,
                 synced ? "out of memory" : strerror(errno));
        unlink(final);
        return -1;
    }
    return 0;
}

FILE *sqlite_file_open(struct store *st, const struct batch *b, const char *data_dir)
{
    struct sqlite_store *s = SQ(st);
    (void)data_dir; /* b->path is where the file is */
    FILE *f = b->path ? fopen(b->path, "rb") : NULL;
    if (!f)
        snprintf(s->err, sizeof s->err, "the file of batch %s (%s) cannot be read: %s", b->id,
                 b->path ? b->path : "no path recorded", b->path ? strerror(errno) : "-");
    else
        s->err[0] = 0; /* a read error is errno's to tell (store.h) */
    return f;
}

int sqlite_file_drop(struct store *st, const char *batch_id, const char *path, const char *data_dir)
{
    struct sqlite_store *s = SQ(st);
    (void)data_dir; /* path is the file */
    if (path && unlink(path) < 0 && errno != ENOENT) {
        snprintf(s->err, sizeof s->err, "removing the file of batch %s (%s): %s", batch_id, path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Whether a batch record with this id exists: 1, 0, or -1. */
static int batch_exists(struct sqlite_store *s, sqlite3_stmt *q, const char *id)
{
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sqlite_fail(s, "file sweep");
}

int sqlite_file_sweep(struct store *st, int64_t older_than_ms, const char *data_dir)
{
    struct sqlite_store *s = SQ(st);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/batches", data_dir);
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT)
        return 0; /* no batch was ever uploaded here */
    if (!d) {
        snprintf(s->err, sizeof s->err, "file sweep: %s: %s", dir, strerror(errno));
        return -1;
    }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM batches WHERE id = ?1", -1, &q, NULL) !=
        SQLITE_OK) {
        closedir(d);
        return sqlite_fail(s, "file sweep");
    }
    int removed = 0;
    struct dirent *e;
    while (removed >= 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".csv") != 0)
            continue; /* spools (.part) and anything else are not the store's */
        char path[PATH_MAX], id[NAME_MAX + 1];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
            (int64_t)sb.st_mtime * 1000 >= older_than_ms)
            continue;
        snprintf(id, sizeof id, "%.*s", (int)(n - 4), e->d_name);
        int r = batch_exists(s, q, id);
        if (r < 0)
            removed = -1;
        else if (r == 0 && unlink(path) == 0)
            removed++;
    }
    sqlite3_finalize(q);
    closedir(d);
    return removed;
}
