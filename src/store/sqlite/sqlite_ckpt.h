/*
 * sqlite_ckpt.h - WAL checkpoints off the writer's path (SQLite backend only).
 *
 * By default SQLite checkpoints inside the COMMIT that pushes the WAL past
 * wal_autocheckpoint pages: the writer then copies the WAL into the database
 * and fsyncs it (tens of ms) while every request waits. Instead, the write
 * connection's WAL hook wakes this thread, which runs PASSIVE checkpoints on
 * its own connection, concurrently with the writer's commits.
 *
 * Checkpoints run and failed are counted process-wide (every write connection of
 * the process has its checkpointer, all on the same file), for /metrics, the
 * sentinel's checkpoint_failing rule and /health/detailed (store.h store_wal).
 * A failure is an error other than SQLITE_BUSY (another checkpoint running); a
 * checkpoint that readers keep from finishing is not one.
 */
#ifndef SLUICE_STORE_SQLITE_CKPT_H
#define SLUICE_STORE_SQLITE_CKPT_H

#include <sqlite3.h>

struct store_wal;

struct sqlite_ckpt;

/* Take over checkpointing of writer_db (the database file at path). NULL on failure
 * (SQLite's automatic checkpoints then stay on). */
struct sqlite_ckpt *sqlite_ckpt_start(const char *path, sqlite3 *writer_db);
/* Run a last checkpoint and stop; call before closing writer_db. Accepts NULL. */
void sqlite_ckpt_stop(struct sqlite_ckpt *c);
/* The counters, and the size of path's -wal file now (out zeroed by the caller). */
void sqlite_ckpt_stats(const char *path, struct store_wal *out);

#endif
