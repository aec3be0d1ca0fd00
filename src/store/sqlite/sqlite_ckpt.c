/*
 * sqlite_ckpt.c - see sqlite_ckpt.h.
 */
#include "store/sqlite/sqlite_ckpt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* Wake the checkpointer when the WAL holds this many frames (~4 MiB of 4 KiB pages). */
#define CKPT_PAGES 1000

struct sqlite_ckpt {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, stop;
    sqlite3 *db;        /* the checkpointer's own connection */
    sqlite3 *writer_db; /* borrowed */
};

/* Process-wide (see sqlite_ckpt.h). */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    unsigned long long done, failed;
    unsigned consecutive;
    int64_t last_failure_ms, limit;
    char last_error[256];
} stats = {.limit = -1};

static void count(int ok, const char *error)
{
    pthread_mutex_lock(&stats_mu);
    stats.done++;
    if (ok) {
        stats.consecutive = 0;
    } else {
        stats.failed++;
        stats.consecutive++;
        stats.last_failure_ms = clock_wall_ms();
        snprintf(stats.last_error, sizeof stats.last_error, "%s", error);
    }
    pthread_mutex_unlock(&stats_mu);
}

void sqlite_ckpt_stats(const char *path, struct store_wal *out)
{
    char wal[4200];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", path);
    out->known = 1;
    out->bytes = stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
    pthread_mutex_lock(&stats_mu);
    out->limit_bytes = stats.limit;
    out->checkpoints = stats.done;
    out->checkpoint_failures = stats.failed;
    out->consecutive_failures = stats.consecutive;
    out->last_failure_ms = stats.last_failure_ms;
    snprintf(out->last_error, sizeof out->last_error, "%s", stats.last_error);
    pthread_mutex_unlock(&stats_mu);
}

static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    struct sqlite_ckpt *c = arg;
    if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&c->mu);
        c->pending = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

static void checkpoint(struct sqlite_ckpt *c)
{
    int wal = -1, done = -1;
    /* A connection that has not read yet has not opened the WAL, and SQLite then
     * reports success while copying nothing (-1/-1): read once first. */
    sqlite3_exec(c->db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal, &done);
    if (rc == SQLITE_BUSY)
        return; /* another checkpoint is running: not a failure, and not one done */
    if (rc != SQLITE_OK || wal < 0) {
        log_warn("store", "checkpoint failed", "\"error\":\"%s\",\"wal_frames\":%d",
                 sqlite3_errmsg(c->db), wal);
        count(0, sqlite3_errmsg(c->db));
    } else {
        log_debug("store", "checkpoint", "\"wal_frames\":%d,\"copied\":%d", wal, done);
        count(1, NULL);
    }
}

static void *ckpt_main(void *arg)
{
    struct sqlite_ckpt *c = arg;
    pthread_setname_np(pthread_self(), "sl-checkpoint");
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->pending && !c->stop)
            pthread_cond_wait(&c->cv, &c->mu);
        int stop = c->stop;
        c->pending = 0;
        pthread_mutex_unlock(&c->mu);
        checkpoint(c);
        pthread_mutex_lock(&c->mu);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct sqlite_ckpt *sqlite_ckpt_start(const char *path, sqlite3 *writer_db)
{
    struct sqlite_ckpt *c = sl_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    /* The limit the WAL is cut back to after a checkpoint (the write connection's pragma,
     * read here on the thread that owns it). */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(writer_db, "PRAGMA journal_size_limit", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        pthread_mutex_lock(&stats_mu);
        stats.limit = sqlite3_column_int64(q, 0);
        pthread_mutex_unlock(&stats_mu);
    }
    sqlite3_finalize(q);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->writer_db = writer_db;
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
        sqlite3_close(c->db);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return NULL;
    }
    /* Replaces SQLite's own automatic checkpointing on the writer connection. */
    sqlite3_wal_hook(writer_db, on_wal, c);
    return c;
}

void sqlite_ckpt_stop(struct sqlite_ckpt *c)
{
    if (!c)
        return;
    sqlite3_wal_hook(c->writer_db, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    sqlite3_close(c->db);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
