/*
 * store_pool.h - a few store connections lent to threads that have none of their own.
 *
 * A struct store is one connection, owned by one thread (store.h). The libuv thread
 * pool's work (keeping an upload's file, dropping deleted batches' files) and the
 * service's housekeeping run on threads that own none, and must not borrow the
 * writer's (busy with its group transaction) nor an HTTP loop's (read-only, and used
 * by its loop at any moment). So they take one from here for the few statements they
 * need and give it back. Connections are opened on first need, at most max of them;
 * a taker waits while all are lent.
 */
#ifndef SLUICE_STORE_STORE_POOL_H
#define SLUICE_STORE_STORE_POOL_H

#include <stddef.h>

struct store;
struct store_pool;

/* A pool of at most max write connections to the store at uri (copied). NULL: no memory. */
struct store_pool *store_pool_create(const char *uri, int max);
/* Close every connection; all must have been given back. Accepts NULL. */
void store_pool_destroy(struct store_pool *p);
/* A connection for this thread's use until store_pool_give(); waits while max are lent.
 * NULL when a new one cannot be opened (the reason in err). */
struct store *store_pool_take(struct store_pool *p, char *err, size_t errlen);
/* Give st back. ok = 0 when an operation on it failed: it is closed rather than kept, so a
 * connection that was lost is not lent again. */
void store_pool_give(struct store_pool *p, struct store *st, int ok);

#endif
