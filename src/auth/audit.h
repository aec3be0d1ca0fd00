/*
 * audit.h - the audit log: every state-changing request of an authenticated
 * caller (who, what, when, from where, the answer's status).
 *
 * Records are noted when the answer is sent and written by the writer in the
 * next group commit (one job drains everything noted meanwhile), so auditing
 * costs the ingest path a copy and a lock, not a job per request. A crash can
 * lose the records of the last few milliseconds of answers; the request log
 * line of each of them is written first.
 */
#ifndef SLUICE_AUTH_AUDIT_H
#define SLUICE_AUTH_AUDIT_H

#include "store/store.h"

struct writer;

/* Note one record (strings copied); submits the writer job that stores it. */
void audit_note(struct writer *w, const struct audit_new *e);
/* Record the last use of the API keys used since the last call (one writer job). */
void audit_flush_key_use(struct writer *w, int64_t now_ms);
/* Records noted and not yet handed to the store, and records lost (queue full). */
unsigned long long audit_dropped(void);

#endif
