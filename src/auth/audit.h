/*
 * audit.h - the audit log: every state-changing request of an authenticated
 * caller (who, what, when, from where, the answer's status).
 *
 * Records are noted when the answer is sent and written by the writer in the
 * next group commit (one job drains everything noted meanwhile), so auditing
 * costs the ingest path a copy and a lock, not a job per request. A crash can
 * lose the records of the last few milliseconds of answers; the request log
 * line of each of them is written first.
 *
 * A record is the audit log's until its commit succeeded: when the flush
 * cannot begin or commit (the database locked, a failing disk, the store
 * away), its records go back to the front of the queue and a new flush is
 * tried after AUDIT_RETRY_MS (writer_submit_later), until one commits. At most
 * audit.max_pending records wait (queued or being flushed); a record noted
 * beyond that, or still waiting when the writer stops, is dropped: counted
 * (audit_stats, sluice_audit_dropped_total, /health/detailed) and logged.
 * API keys' last-use stamps are kept and retried the same way.
 *
 * Threads: audit_note() from the I/O loops, the rest from any thread.
 */
#ifndef SLUICE_AUTH_AUDIT_H
#define SLUICE_AUTH_AUDIT_H

#include "store/store.h"

struct writer;

#define AUDIT_RETRY_MS 1000

/* The bound on waiting records (audit.max_pending); at start-up and reload. */
void audit_configure(int max_pending);
/* Note one record (strings copied); submits the writer job that stores it. */
void audit_note(struct writer *w, const struct audit_new *e);
/* Record the last use of the API keys used since the last call (one writer job); stamps
 * that could not be stored are tried again with the next call. */
void audit_flush_key_use(struct writer *w, int64_t now_ms);

struct audit_stats {
    unsigned long long pending;            /* noted, not stored yet */
    unsigned long long dropped;            /* lost: over the bound, or at shutdown */
    unsigned long long flush_failures;     /* flushes that could not commit (retried) */
    int retrying;                          /* the last flush failed; a retry is due */
    int64_t last_drop_ms, last_failure_ms; /* wall clock, 0 = never */
};
void audit_stats(struct audit_stats *out);
/* Records lost (audit_stats().dropped). */
unsigned long long audit_dropped(void);

#endif
