/*
 * sqlite_ckpt.h - WAL checkpoints off the writer's path (SQLite backend only).
 *
 * By default SQLite checkpoints inside the COMMIT that pushes the WAL past
 * wal_autocheckpoint pages: the writer then copies the WAL into the database
 * and fsyncs it (tens of ms) while every request waits. Instead, the write
 * connection's WAL hook wakes this thread, which runs PASSIVE checkpoints on
 * its own connection, concurrently with the writer's commits.
 */
#ifndef SLUICE_STORE_SQLITE_CKPT_H
#define SLUICE_STORE_SQLITE_CKPT_H

#include <sqlite3.h>

struct sqlite_ckpt;

/* Take over checkpointing of writer_db (the database file at path). NULL on failure
 * (SQLite's automatic checkpoints then stay on). */
struct sqlite_ckpt *sqlite_ckpt_start(const char *path, sqlite3 *writer_db);
/* Run a last checkpoint and stop; call before closing writer_db. Accepts NULL. */
void sqlite_ckpt_stop(struct sqlite_ckpt *c);

#endif
