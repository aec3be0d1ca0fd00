/*
 * config.h - sluice's configuration: one YAML file, every option declared once
 * in a table (options.c) from which validation, defaults and
 * docs/configuration.md come.
 *
 * Order of precedence: defaults < file < environment (SLUICE_LISTEN,
 * SLUICE_DATA_DIR) < command line (--listen, --data-dir).
 */
#ifndef SLUICE_CONFIG_CONFIG_H
#define SLUICE_CONFIG_CONFIG_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "cron/cron.h"
#include "schema/schema.h"

enum on_duplicate { ON_DUP_REJECT = 0, ON_DUP_UPSERT, ON_DUP_SKIP };
const char *on_duplicate_name(enum on_duplicate d); /* "reject" | "upsert" | "skip" */

struct dataset_config {
    char *name;                     /* ^[a-z][a-z0-9_]{0,62}$ */
    char *key;                      /* NULL, or the key's text form (schema.h): "case_number",
                                     * "[\"source\",\"case_number\"]" */
    struct schema_key key_fields;   /* the key resolved against schema; n = 0: no key */
    enum on_duplicate on_duplicate; /* default reject */
    double error_threshold_percent; /* default 10 */
    uint64_t expected_every_ms;     /* 0: none; else a source_stalled finding after this */
    char *csv_null;                 /* NULL: the empty CSV cell is the null string */
    int csv_empty_string;           /* 1: an empty CSV cell of a string field is "" */
    json_t *schema_json;            /* owned; the schema as JSON */
    struct schema *schema;          /* owned; compiled */
};

/* One entry of auth.jwt.keys: exactly one key source. config_load() checks the entry
 * (one source, known algorithm names); auth/jwt_keys.c reads the key it names. */
struct jwt_key_config {
    char *kid;         /* NULL: tried for every token of an allowed alg without kid */
    char **algorithms; /* NULL-terminated names ("HS256", ...) */
    char *secret_file, *secret_env, *public_key_file, *jwks_file;
    int line; /* where it was written, for messages */
};

struct jwt_keyset;

/* One entry of alerts.receivers. */
struct receiver_config {
    char *name;
    int type;   /* index in webhook|alertmanager|log */
    char *url;  /* webhook, alertmanager */
    int format; /* webhook: index in json|slack */
    int line;
};

/* One entry of alerts.routes: the receivers of the findings it matches. */
struct route_config {
    char *severity, *rule, *dataset; /* NULL: any */
    char **receivers;                /* NULL-terminated names */
    int line;
};

/* One entry of jobs: a scheduled job (docs/scheduling.md). The kind's arguments are checked
 * against the kind's own table (config_job_kinds, jobs.c) and kept in args: a field not
 * used by the kind keeps its default. */
enum job_catchup { JOB_CATCHUP_NONE = 0, JOB_CATCHUP_LATEST, JOB_CATCHUP_ALL };
enum job_overlap { JOB_OVERLAP_SKIP = 0, JOB_OVERLAP_QUEUE };
struct job_config {
    char *name;                 /* ^[a-z][a-z0-9_]{0,62}$, unique */
    char *cron;                 /* the expression as written */
    struct cron schedule;       /* cron compiled (cron.h) */
    char *timezone;             /* IANA name, default "UTC" */
    struct tz *tz;              /* owned: timezone loaded (cron/tz.h) */
    int kind;                   /* index in config_job_kind_names */
    int enabled;                /* default 1 */
    uint64_t timeout_ms;        /* 1h; a run that takes longer is canceled and fails */
    int catchup;                /* enum job_catchup, default latest */
    int max_catchup_runs;       /* 10 */
    uint64_t catchup_window_ms; /* 0: any missed time; else only those this recent */
    uint64_t grace_ms;          /* 60s: a time later than this when seen is missed (catch-up) */
    int overlap;                /* enum job_overlap, default skip */
    int keep_runs;              /* 100 newest runs kept */
    int keep_days;              /* 30: older runs pruned (beyond keep_runs) */
    int keep_failed_days;       /* 90: failed runs kept this long */
    int retries;                /* 0: a failed run is not retried */
    uint64_t retry_backoff_ms;  /* 30s, doubled for each further attempt */
    struct {
        uint64_t sleep_ms;         /* noop */
        int fail;                  /* noop: end failed */
        char *dataset;             /* dlq_retry: NULL = any */
        char *error_code;          /* dlq_retry: NULL = any */
        int limit;                 /* dlq_retry: most entries a run retries */
        char **tasks;              /* housekeeping: NULL-terminated; NULL = all */
        char *url, *method, *body; /* http */
        char **headers;            /* http: "Name: value", NULL-terminated */
        char **expect_status;      /* http: status codes that succeed; NULL = 2xx */
    } args;
    int line;
};
/* The job kinds, by index (NULL-terminated): what job_config.kind indexes. */
extern const char *const config_job_kind_names[];
/* The tasks a housekeeping job may name (NULL-terminated). */
extern const char *const config_housekeeping_tasks[];

struct sluice_config {
    char *path;     /* the file it was read from (owned), NULL if none */
    char *listen;   /* "HOST:PORT", default "127.0.0.1:8080" */
    char *data_dir; /* default "./var" */
    char *storage;  /* default "sqlite:<data_dir>/sluice.db" */
    int io_threads; /* default 2 */

    struct {
        uint64_t max_body_bytes;     /* 64M */
        uint64_t max_row_bytes;      /* 1M */
        int max_json_depth;          /* 64 */
        uint64_t max_header_bytes;   /* 16K: request line + all headers */
        int max_errors_per_response; /* 100 */
        uint64_t max_upload_bytes;   /* 64G: one uploaded batch file */
        uint64_t max_inflight_bytes; /* 512M: request bodies held at once, all connections */
    } limits;

    struct {
        uint64_t idle_timeout_ms;    /* 60s: keep-alive connection with no request */
        uint64_t request_timeout_ms; /* 30s: from the first byte to the whole body */
        int max_connections;         /* 4096 per process */
    } http;

    struct {
        double requests_per_s;  /* 0: off */
        int burst;              /* 0: requests_per_s rounded up, at least 1 */
        int max_clients;        /* 65536 buckets; read at start-up */
        char **trusted_proxies; /* owned, NULL-terminated; NULL: X-Forwarded-For ignored */
    } rate_limits;

    struct {
        int queue_max_jobs; /* 1024: bounded queue to the writer; full -> 503 */
        int max_group_rows; /* 50000: most rows in one group commit */
        int lock_wait_ms;   /* 200: PostgreSQL's lock_timeout on the service's writer */
    } writer;

    struct {
        uint64_t min_free_bytes; /* 64M: less free in data_dir -> not ready */
    } health;

    struct {
        int max_pending; /* 100000: audit records waiting for the store; more are dropped */
    } audit;

    struct {
        int workers;      /* 2; 0: accept uploads, leave processing to other nodes */
        int lease_s;      /* 60: a worker that stops renewing loses its batch after this */
        int max_attempts; /* 3 */
    } batches;

    uint64_t idempotency_ttl_ms;  /* 24h */
    uint64_t shutdown_timeout_ms; /* 10s */

    struct {
        char *level;  /* debug|info|warn|error, default info */
        int requests; /* bool, default 1: one line per request */
    } log;

    struct dataset_config *datasets; /* owned array */
    size_t ndatasets;

    struct {
        struct {
            char *issuer, *audience; /* NULL: not checked */
            char *role_claim;        /* default "role" */
            int default_role;        /* index in none|viewer|ingest|operator|admin (enum role) */
            int leeway_s;            /* 60 */
            int require_exp;         /* bool, default 1 */
            struct jwt_key_config *keys; /* owned array */
            size_t nkeys;
            /* owned; the keys built from keys by auth/jwt_keys.c after loading (NULL when
             * none, and after config_load() alone); config_release() frees it with
             * keyset_free, which the builder sets with it */
            struct jwt_keyset *keyset;
            void (*keyset_free)(struct jwt_keyset *ks);
        } jwt;
        int dev_bypass; /* bool: no auth at all (loopback listeners only) */
        int metrics;    /* index in loopback|open|token */
    } auth;

    struct {
        char **allowed_origins; /* owned, NULL-terminated; NULL: no CORS */
    } cors;

    struct {
        int interval_s; /* 30; 0: the server does not run it */
        struct {
            int after_s, severity, auto_reset, max_resets;
        } stuck_batches;
        struct {
            int window_s;
            double warning_pct, critical_pct;
            int min_rows;
        } error_rate;
        struct {
            int window_s, warning_count, severity;
        } dlq_growth;
        struct {
            int window_s, p95_ms, severity;
        } ingest_latency;
        struct {
            double min_free_pct;
            uint64_t min_free_bytes;
            int severity;
        } disk_low;
        struct {
            int after_failures, severity;
        } checkpoint_failing;
        struct {
            int after_failures, severity; /* 3 failed runs since the last success; warning */
        } job_failing;
        struct {
            int severity; /* warning: a due run did not start within its job's grace */
        } job_missed;
    } sentinel;

    struct {
        int repeat_interval_s;             /* 14400 */
        int retry_initial_s;               /* 1: first retry of a failed delivery */
        int retry_max_s;                   /* 300: the backoff's cap */
        struct receiver_config *receivers; /* owned array */
        size_t nreceivers;
        struct route_config *routes; /* owned array */
        size_t nroutes;
    } alerts;

    struct {
        int enabled;     /* 1: this node runs the scheduler (one node at a time, a lease) */
        int lease_s;     /* 30: a run's lease, renewed while it runs */
        int max_running; /* 16: runs at once on this node */
    } scheduler;
    struct job_config *jobs; /* owned array */
    size_t njobs;

    int storage_explicit; /* storage was set by the file or config_set(); else it follows
                             data_dir */
};

/*
 * Load and validate a file into cfg (which is zeroed first). Unknown keys, wrong
 * types and bad schemas are errors. On failure returns -1 and writes to err a
 * message that names the file, the line and the option, e.g.
 *   "examples/sluice.yaml:7: limits.max_body_bytes: expected a size like 64M, got 'lots'"
 * path may be NULL: defaults only. The JWT keys are not read here: sluice's
 * commands load through jwt_keys_config_load() (auth/jwt_keys.h), which builds
 * them as config_load_then()'s step.
 */
int config_load(const char *path, struct sluice_config *cfg, char *err, size_t errlen);

/*
 * config_load() with a step of the caller's run once the file is read and
 * storage derived, before the checks across options (alert routes, trusted
 * proxies), so that its errors come where they would if config_load() made
 * them. then returns 0, or -1 with err set ("FILE:LINE: OPTION: why"); on -1
 * the load fails and cfg is released. then may be NULL.
 */
typedef int (*config_load_step)(struct sluice_config *cfg, char *err, size_t errlen);
int config_load_then(const char *path, struct sluice_config *cfg, config_load_step then, char *err,
                     size_t errlen);

/* Apply SLUICE_LISTEN / SLUICE_DATA_DIR from the environment. Returns -1 on a bad value. */
int config_apply_env(struct sluice_config *cfg, char *err, size_t errlen);

/* Set one option by its dotted name from a string (used by --listen, --data-dir). */
int config_set(struct sluice_config *cfg, const char *name, const char *value, char *err,
               size_t errlen);

void config_release(struct sluice_config *cfg); /* frees everything inside; cfg may be reused */

/* How long minute rollups are kept (the sentinel's windows and the last hour of
 * /health/detailed read them): 48 hours, or twice the longest sentinel window if longer. The
 * server's purge, the housekeeping job and `sluice rollups rebuild` all keep this much. */
int64_t config_minute_rollups_kept_ms(const struct sluice_config *cfg);

/* Find a job by name; borrowed, NULL if none. */
const struct job_config *config_job(const struct sluice_config *cfg, const char *name);

/* Find a dataset by name; borrowed, NULL if none. */
const struct dataset_config *config_dataset(const struct sluice_config *cfg, const char *name);

/* Write the reference page docs/configuration.md, generated from the option table. */
void config_write_docs(FILE *out);

/* Parse "64M", "1k", "1048576" -> bytes; "30s", "500ms", "24h", "2m" -> milliseconds. */
int config_parse_size(const char *s, uint64_t *out);
int config_parse_duration_ms(const char *s, uint64_t *out);

#endif
