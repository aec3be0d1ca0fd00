/*
 * service.h - the running service: the configuration in force (the catalog),
 * the writer, the HTTP server, and what ties them together at start-up,
 * reload and shutdown.
 *
 * The configuration in force is a catalog (config/catalog.h): immutable and
 * reference-counted; SIGHUP and POST /api/v1/admin/reload swap in a new one without
 * disturbing whoever holds the old one. This is the top of the map (docs/architecture.md):
 * only cli/serve.c includes this header, and nothing here is reached from below except
 * through what service.c hands each part when it starts it.
 */
#ifndef SLUICE_SERVICE_SERVICE_H
#define SLUICE_SERVICE_SERVICE_H

#include <stdint.h>

#include "config/config.h"

#include "config/catalog.h"
#include "http/server.h"

struct writer;
struct store_pool;
struct http_server;
struct batch_pool;
struct sentinel;

/*
 * The service owns every part below and is the only place that wires them together: each
 * part's start function is given what it needs (the writer, the catalog source, the store
 * URI, the pool of lent connections), never the service.
 */
struct sched;
struct service {
    struct catalog_source catalogs; /* the configuration in force (catalog.h) */
    struct writer *writer;
    struct store_pool *files; /* connections lent to threads that own none (store_pool.h) */
    struct http_server *http;
    struct http_app app;        /* what the HTTP handlers borrow (server.h) */
    struct batch_pool *batches; /* NULL when batches.workers is 0 */
    struct sentinel *sentinel;  /* NULL when sentinel.interval_s is 0 */
    struct sched *sched;        /* the scheduler (sched.h): runs only where it leads */
    int alerts_started;         /* the alerts' notifier thread runs */
    int64_t started_ms;
    uint64_t started_ns;
    char *config_path;                         /* owned; NULL when started without a file */
    char *listen_override, *data_dir_override; /* owned; from the command line */
    char *store_uri;                           /* owned; fixed at start */
    int64_t files_swept_ms;                    /* the last sweep of orphaned batch files */
};

/*
 * Load the configuration the way `serve` does: file, then environment, then
 * the command-line overrides; auth.dev_bypass is refused unless listen is a
 * loopback address. Returns 0, or -1 with the message in err (a bad
 * configuration: `serve` exits 2).
 */
int service_load_config(const struct service *s, struct sluice_config *cfg, char *err,
                        size_t errlen);

/*
 * Start: open and migrate the store, create or check the dataset tables, start the writer,
 * the batch workers, the alerts' notifier, the sentinel and the HTTP loops, in that order.
 * Returns 0, with cfg's contents taken (cfg is zeroed; service_stop() releases them); or -1
 * with err set, after undoing in reverse order what had started, and cfg untouched: the
 * caller still owns it and releases it (config_release). service_stop() is not called
 * after a failed start.
 */
int service_start(struct service *s, struct sluice_config *cfg, char *err, size_t errlen);

/*
 * Re-read the configuration file (SIGHUP, POST /api/v1/admin/reload). New
 * datasets and new optional fields apply at once; a file that does not load (the
 * reason names the file, the line and the option, as config_load() says) or a
 * change that would break stored data is refused and the old configuration
 * stays. Waits for the writer (the tables are synced in one of its jobs), so not
 * on a loop thread. One reload runs at a time; the outcome is logged.
 * Returns 0, with *changes (when changes is not NULL; caller owns it) set to
 * {"reload": "applied", "datasets": {"added", "removed", "changed"},
 * "restart_required": [option names]}, or -1 with the reason in why.
 */
int service_reload(struct service *s, json_t **changes, char *why, size_t whylen);

/* Forget idempotency keys older than idempotency.ttl; and, once an hour, remove batch
 * files no batch record names and upload spools, older than an hour (a crash left them).
 * Returns 0 or -1 (the key purge failed). */
int service_purge(struct service *s);

/* Stop accepting, finish what is in flight (at most timeout_ms), stop everything. */
void service_stop(struct service *s, uint64_t timeout_ms);

#endif
