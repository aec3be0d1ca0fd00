/*
 * config.c - sluice's configuration: one YAML file read with libfyaml, checked
 * against a single table of options.
 *
 * Every option is one row of opts[] (and every key of a dataset one row of
 * ds_opts[]): its dotted name, its type, its default as text, where it lives in
 * struct sluice_config and its help text. Defaults are applied by parsing the
 * default text with the same code that parses the file, unknown keys are found
 * by looking names up in the table, and config_write_docs() prints the table as
 * docs/configuration.md, so the code, the defaults and the docs cannot drift.
 * A dataset's schema is turned from YAML into a jansson value (quoted scalars
 * stay strings; plain ones follow the YAML 1.2 core schema) and compiled with
 * schema_compile(). Every error names the file, the line and the option.
 */
#include "config/config.h"

#include "util/errors.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <libfyaml.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NAME_MAX_LEN 200 /* longest dotted option name we build, "datasets[N].key" */

enum opt_type {
    OT_STRING,    /* char *, not empty */
    OT_INT,       /* int */
    OT_NUMBER,    /* double */
    OT_BOOL,      /* int, 0 or 1 */
    OT_SIZE,      /* uint64_t bytes */
    OT_DURATION,  /* uint64_t milliseconds */
    OT_LISTEN,    /* char *, HOST:PORT */
    OT_ENUM,      /* char *, one of choices */
    OT_CHOICE,    /* int, index into choices (an enum) */
    OT_STORAGE,   /* char *, sqlite:PATH or postgres[ql]://... */
    OT_NAME,      /* char *, ^[a-z][a-z0-9_]{0,62}$ */
    OT_SCHEMA,    /* json_t * + struct schema *, from a mapping */
    OT_DATASETS,  /* struct dataset_config * + count, from a list */
    OT_STRLIST,   /* char **, NULL-terminated, from a list of strings */
    OT_JWTKEYS,   /* struct jwt_key_config * + count, from a list */
    OT_RECEIVERS, /* struct receiver_config * + count, from a list */
    OT_ROUTES,    /* struct route_config * + count, from a list */
    OT_KEY,       /* char *, a dataset's key in its text form (schema.h), from a name or a list */
};

/* Each type's name in the docs and what errors say a value should look like. */
static const struct {
    const char *doc, *expect;
} types[] = {
    [OT_STRING] = {"string", "a string"},
    [OT_INT] = {"integer", "an integer"},
    [OT_NUMBER] = {"number", "a number"},
    [OT_BOOL] = {"boolean", "true or false"},
    [OT_SIZE] = {"size", "a size like 64M"},
    [OT_DURATION] = {"duration", "a duration like 30s"},
    [OT_LISTEN] = {"HOST:PORT", "HOST:PORT like 127.0.0.1:8080"},
    [OT_ENUM] = {NULL, NULL}, /* "one of ..." from the choices */
    [OT_CHOICE] = {NULL, NULL},
    [OT_STORAGE] = {"storage URL", "sqlite:PATH or a postgres:// URL"},
    [OT_NAME] = {"name", "a name matching ^[a-z][a-z0-9_]{0,62}$"},
    [OT_SCHEMA] = {"mapping", "a mapping (a JSON Schema object)"},
    [OT_DATASETS] = {"list", "a list of datasets"},
    [OT_STRLIST] = {"list of strings", "a list of strings"},
    [OT_JWTKEYS] = {"list", "a list of keys"},
    [OT_RECEIVERS] = {"list", "a list of receivers"},
    [OT_ROUTES] = {"list", "a list of routes"},
    [OT_KEY] = {"name or list of names", "a property name or a list of them"},
};

enum {
    OPT_MIN = 1 << 0,      /* min is a lower bound */
    OPT_MAX = 1 << 1,      /* max is an upper bound */
    OPT_REQUIRED = 1 << 2, /* must be given */
    OPT_DERIVED = 1 << 3,  /* default computed after loading: "<data_dir>" is replaced */
    OPT_EMPTY_OK = 1 << 4, /* OT_STRING: "" is a value */
};

struct opt {
    const char *name; /* dotted: "limits.max_body_bytes" */
    enum opt_type type;
    const char *def; /* default as text; NULL: none */
    size_t off;      /* offset in struct sluice_config (or struct dataset_config) */
    const char *help;
    const char *const *choices; /* OT_ENUM, OT_CHOICE: NULL-terminated */
    double min, max;            /* bounds for numbers, sizes and durations (see flags) */
    unsigned flags;
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const on_dup_names[] = {"reject", "upsert", "skip", NULL};
static const char *const role_names[] = {"none", "viewer", "ingest", "operator", "admin", NULL};
static const char *const metrics_modes[] = {"loopback", "open", "token", NULL};
static const char *const severities[] = {"warning", "critical", NULL};
static const char *const receiver_types[] = {"webhook", "alertmanager", "log", NULL};
static const char *const webhook_formats[] = {"json", "slack", NULL};
/* The names auth.jwt.keys[].algorithms may hold: exactly the JOSE names that
 * jwt_alg_from_name() (auth/jwt.h) knows, so that the keys built later take them. */
static const char *const jwt_algorithms[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                             "RS512", "PS256", "PS384", "PS512", "ES256",
                                             "ES384", "ES512", "EdDSA", NULL};

#define CFG(field) offsetof(struct sluice_config, field)
#define DS(field) offsetof(struct dataset_config, field)
#define OPT(n, t, d, o, h) .name = (n), .type = (t), .def = (d), .off = (o), .help = (h)
#define RANGE(lo, hi) .min = (lo), .max = (hi), .flags = OPT_MIN | OPT_MAX
#define AT_LEAST(lo) .min = (lo), .flags = OPT_MIN

/* The options of the file, in the order of the docs. */
static const struct opt opts[] = {
    {OPT("listen", OT_LISTEN, "127.0.0.1:8080", CFG(listen),
         "Address the HTTP server listens on: an IPv4 address, a host name or a [bracketed] IPv6 "
         "address, a colon and a port (1-65535).")},
    {OPT("data_dir", OT_STRING, "./var", CFG(data_dir),
         "Directory for sluice's own files; the default storage lives in it.")},
    {OPT("storage", OT_STORAGE, "sqlite:<data_dir>/sluice.db", CFG(storage),
         "Where rows are stored: `sqlite:PATH`, or a PostgreSQL URL `postgres://user:pass@host/db` "
         "(also `postgresql://`; libpq fills in what it leaves out from the `PG*` environment "
         "variables; sluice adds `connect_timeout=5` and TCP keepalives `keepalives_idle=30`, "
         "`keepalives_interval=10`, `keepalives_count=3` unless the URL or the environment sets "
         "them; see [scaling.md](scaling.md)). When not set, it follows `data_dir`."),
     .flags = OPT_DERIVED},
    {OPT("io_threads", OT_INT, "2", CFG(io_threads),
         "Number of I/O threads, each with its own event loop."),
     RANGE(1, 64)},
    {OPT("limits.max_body_bytes", OT_SIZE, "64M", CFG(limits.max_body_bytes),
         "Largest request body accepted; a larger one is answered 413 BODY_TOO_LARGE."),
     AT_LEAST(1)},
    {OPT("limits.max_row_bytes", OT_SIZE, "1M", CFG(limits.max_row_bytes),
         "Largest single row (one NDJSON line or CSV record); a larger one is ROW_TOO_LARGE."),
     AT_LEAST(1)},
    {OPT("limits.max_json_depth", OT_INT, "64", CFG(limits.max_json_depth),
         "Deepest JSON nesting accepted in a row; deeper is NESTING_TOO_DEEP."),
     RANGE(1, 1000)},
    {OPT("limits.max_header_bytes", OT_SIZE, "16K", CFG(limits.max_header_bytes),
         "Largest request line plus headers; more is answered 431 HEADERS_TOO_LARGE."),
     AT_LEAST(1)},
    {OPT("limits.max_upload_bytes", OT_SIZE, "64G", CFG(limits.max_upload_bytes),
         "Largest uploaded batch file; it is streamed to disk, never held in memory. Larger is "
         "413 BODY_TOO_LARGE."),
     AT_LEAST(1)},
    {OPT("limits.max_inflight_bytes", OT_SIZE, "512M", CFG(limits.max_inflight_bytes),
         "Most request-body bytes held in memory at once over all connections; a request that "
         "would go past it is answered 503 OVERLOADED, so memory stays bounded whatever the "
         "number of clients."),
     AT_LEAST(1)},
    {OPT("limits.max_errors_per_response", OT_INT, "100", CFG(limits.max_errors_per_response),
         "Most row errors listed in one response."),
     RANGE(1, 1000000)},
    {OPT("http.idle_timeout", OT_DURATION, "60s", CFG(http.idle_timeout_ms),
         "How long a keep-alive connection may wait for its next request before it is closed."),
     AT_LEAST(1)},
    {OPT("http.request_timeout", OT_DURATION, "30s", CFG(http.request_timeout_ms),
         "Longest time from the first byte of a request to the end of its body; slower is 408 "
         "REQUEST_TIMEOUT. For a streamed batch upload it is the longest wait for the next "
         "piece of the body, so a large file may take as long as it needs."),
     AT_LEAST(1)},
    {OPT("http.max_connections", OT_INT, "4096", CFG(http.max_connections),
         "Most client connections open at once per process."),
     RANGE(1, 1000000)},
    {OPT("rate_limits.requests_per_s", OT_NUMBER, "0", CFG(rate_limits.requests_per_s),
         "Requests per second each client may send on average; more is answered 429 "
         "RATE_LIMITED with `Retry-After`, before the body is read. A client is its API key, its "
         "JWT's `sub`, or else (no credential, `auth.dev_bypass`) its address. Health probes are "
         "never limited. 0 turns rate limits off. See [operations.md](operations.md#rate-limits)."),
     RANGE(0, 1e9)},
    {OPT("rate_limits.burst", OT_INT, "0", CFG(rate_limits.burst),
         "Most requests a client may send at once (the size of its token bucket); 0: "
         "one second's worth (`requests_per_s` rounded up, at least 1)."),
     RANGE(0, 1000000000)},
    {OPT("rate_limits.max_clients", OT_INT, "65536", CFG(rate_limits.max_clients),
         "Most clients whose buckets are kept (rounded up to a multiple of 64; 24 bytes each). "
         "Past it a new client takes the place of the least recently seen of a few, which then "
         "starts over with a full bucket (`sluice_rate_limit_evictions_total`). Read at start-up."),
     RANGE(64, 16777216)},
    {OPT("rate_limits.trusted_proxies", OT_STRLIST, NULL, CFG(rate_limits.trusted_proxies),
         "IP addresses of reverse proxies (`10.0.0.5`, `::1`; anything else is refused at start) "
         "whose `X-Forwarded-For` is believed: a client without a credential that connects "
         "through one is limited by the address the header names (right to left, the first one "
         "not itself listed). Empty: the header is ignored and the connection's address is used.")},
    {OPT("writer.queue_max_jobs", OT_INT, "1024", CFG(writer.queue_max_jobs),
         "Length of the bounded queue in front of the writer; when it is full, ingest requests "
         "are answered 503 OVERLOADED."),
     RANGE(1, 1000000)},
    {OPT("writer.max_group_rows", OT_INT, "50000", CFG(writer.max_group_rows),
         "Most rows the writer commits in one group commit."),
     RANGE(1, 10000000)},
    {OPT("health.min_free_bytes", OT_SIZE, "64M", CFG(health.min_free_bytes),
         "Less free space than this in `data_dir`'s file system: `/health/ready` answers 503 and "
         "the `disk` check of `/health/detailed` fails (a store cannot commit on a full disk). 0 "
         "turns this off (the `disk` check still fails under 1% free).")},
    {OPT("audit.max_pending", OT_INT, "100000", CFG(audit.max_pending),
         "Most audit records waiting to be stored (while commits fail they wait and are retried); "
         "beyond it a record is dropped, logged and counted in `sluice_audit_dropped_total` and "
         "`/health/detailed`."),
     RANGE(1, 10000000)},
    {OPT("batches.workers", OT_INT, "2", CFG(batches.workers),
         "Batch workers in this process; 0 makes a node that accepts uploads and leaves "
         "processing to others."),
     RANGE(0, 64)},
    {OPT("batches.lease_s", OT_INT, "60", CFG(batches.lease_s),
         "Seconds a worker holds a batch without renewing its lease (it renews while it works); "
         "after that another worker takes it up again."),
     RANGE(1, 86400)},
    {OPT("batches.max_attempts", OT_INT, "3", CFG(batches.max_attempts),
         "How many times a batch is taken up before it fails for good."),
     RANGE(1, 100)},
    {OPT("idempotency.ttl", OT_DURATION, "24h", CFG(idempotency_ttl_ms),
         "How long an Idempotency-Key and its answer are remembered."),
     AT_LEAST(1000)},
    {OPT("shutdown_timeout", OT_DURATION, "10s", CFG(shutdown_timeout_ms),
         "On SIGTERM or SIGINT, how long to wait for work in flight before exiting.")},
    {OPT("log.level", OT_ENUM, "info", CFG(log.level), "Least severe level that is logged."),
     .choices = log_levels},
    {OPT("log.requests", OT_BOOL, "true", CFG(log.requests), "Log one line per HTTP request.")},
    {OPT("datasets", OT_DATASETS, NULL, CFG(datasets), "The datasets; see [Datasets](#datasets).")},
    {OPT("auth.jwt.issuer", OT_STRING, NULL, CFG(auth.jwt.issuer),
         "When set, a JWT's `iss` must equal it.")},
    {OPT("auth.jwt.audience", OT_STRING, NULL, CFG(auth.jwt.audience),
         "When set, a JWT's `aud` (a string or an array of strings) must contain it.")},
    {OPT("auth.jwt.role_claim", OT_STRING, "role", CFG(auth.jwt.role_claim),
         "The claim a JWT's role is read from (a string: viewer, ingest, operator or admin).")},
    {OPT("auth.jwt.default_role", OT_CHOICE, "ingest", CFG(auth.jwt.default_role),
         "The role of a valid JWT without the role claim; `none` refuses it (403)."),
     .choices = role_names},
    {OPT("auth.jwt.leeway_s", OT_INT, "60", CFG(auth.jwt.leeway_s),
         "Seconds of clock skew allowed when checking `exp`, `nbf` and `iat`."),
     RANGE(0, 3600)},
    {OPT("auth.jwt.require_exp", OT_BOOL, "true", CFG(auth.jwt.require_exp),
         "Refuse a JWT without `exp`.")},
    {OPT("auth.jwt.keys", OT_JWTKEYS, NULL, CFG(auth.jwt.keys),
         "The keys JWTs are verified with; see [JWT keys](#jwt-keys). Without keys, only API "
         "keys are accepted.")},
    {OPT("auth.dev_bypass", OT_BOOL, "false", CFG(auth.dev_bypass),
         "Turn authentication off, for development: allowed only when `listen` is a loopback "
         "address (start-up fails otherwise), and logged as a warning at start-up and in "
         "`/health/detailed`. `SLUICE_DEV_AUTH_BYPASS=true` sets it too.")},
    {OPT("auth.metrics", OT_CHOICE, "loopback", CFG(auth.metrics),
         "Who may read `/metrics`: `loopback` (anyone when `listen` is a loopback address, "
         "else a token of any role), `open` (anyone) or `token` (a token of any role)."),
     .choices = metrics_modes},
    {OPT("sentinel.interval_s", OT_INT, "30", CFG(sentinel.interval_s),
         "Seconds between two evaluations of the sentinel's rules in the server; 0 turns the "
         "server's sentinel off (`sluice sentinel` still works)."),
     RANGE(0, 86400)},
    {OPT("sentinel.rules.stuck_batches.after_s", OT_INT, "600", CFG(sentinel.stuck_batches.after_s),
         "A batch in a non-terminal state without progress (state change or heartbeat) for this "
         "long is stuck."),
     RANGE(1, 604800)},
    {OPT("sentinel.rules.stuck_batches.severity", OT_CHOICE, "critical",
         CFG(sentinel.stuck_batches.severity), "Severity of stuck batches."),
     .choices = severities},
    {OPT("sentinel.rules.stuck_batches.auto_reset", OT_BOOL, "false",
         CFG(sentinel.stuck_batches.auto_reset),
         "Reset a stuck batch to `uploaded` so a worker takes it again (at most `max_resets` "
         "times per batch).")},
    {OPT("sentinel.rules.stuck_batches.max_resets", OT_INT, "3",
         CFG(sentinel.stuck_batches.max_resets), "Most automatic resets of one batch."),
     RANGE(1, 100)},
    {OPT("sentinel.rules.error_rate.window_s", OT_INT, "3600", CFG(sentinel.error_rate.window_s),
         "Window of the error rate (rejected / received rows), per dataset."),
     RANGE(60, 604800)},
    {OPT("sentinel.rules.error_rate.warning_pct", OT_NUMBER, "10",
         CFG(sentinel.error_rate.warning_pct), "Error rate above this is a warning."),
     RANGE(0, 100)},
    {OPT("sentinel.rules.error_rate.critical_pct", OT_NUMBER, "50",
         CFG(sentinel.error_rate.critical_pct), "Error rate above this is critical."),
     RANGE(0, 100)},
    {OPT("sentinel.rules.error_rate.min_rows", OT_INT, "100", CFG(sentinel.error_rate.min_rows),
         "Fewer rows received in the window than this: no finding (too few to judge)."),
     RANGE(1, 1000000000)},
    {OPT("sentinel.rules.dlq_growth.window_s", OT_INT, "3600", CFG(sentinel.dlq_growth.window_s),
         "Window of DLQ growth."),
     RANGE(60, 604800)},
    {OPT("sentinel.rules.dlq_growth.warning_count", OT_INT, "100",
         CFG(sentinel.dlq_growth.warning_count),
         "More open DLQ entries than this added within the window is a warning."),
     RANGE(1, 1000000000)},
    {OPT("sentinel.rules.dlq_growth.severity", OT_CHOICE, "warning",
         CFG(sentinel.dlq_growth.severity), "Severity of DLQ growth."),
     .choices = severities},
    {OPT("sentinel.rules.ingest_latency.window_s", OT_INT, "300",
         CFG(sentinel.ingest_latency.window_s),
         "Window of the ingest latency's p95 (server only)."),
     RANGE(10, 3600)},
    {OPT("sentinel.rules.ingest_latency.p95_ms", OT_INT, "500", CFG(sentinel.ingest_latency.p95_ms),
         "p95 of ingest requests (events and uploads) above this is a warning."),
     RANGE(1, 3600000)},
    {OPT("sentinel.rules.ingest_latency.severity", OT_CHOICE, "warning",
         CFG(sentinel.ingest_latency.severity), "Severity of slow ingest."),
     .choices = severities},
    {OPT("sentinel.rules.disk_low.min_free_pct", OT_NUMBER, "10",
         CFG(sentinel.disk_low.min_free_pct),
         "Less free space than this share of the data directory's file system is critical."),
     RANGE(0, 100)},
    {OPT("sentinel.rules.disk_low.min_free_bytes", OT_SIZE, "0",
         CFG(sentinel.disk_low.min_free_bytes), "Less free space than this is critical too.")},
    {OPT("sentinel.rules.disk_low.severity", OT_CHOICE, "critical", CFG(sentinel.disk_low.severity),
         "Severity of low disk space."),
     .choices = severities},
    {OPT("sentinel.rules.checkpoint_failing.after_failures", OT_INT, "3",
         CFG(sentinel.checkpoint_failing.after_failures),
         "SQLite: this many WAL checkpoints failed in a row (none succeeded since) is a finding; "
         "the WAL then grows past its limit."),
     RANGE(1, 1000000)},
    {OPT("sentinel.rules.checkpoint_failing.severity", OT_CHOICE, "critical",
         CFG(sentinel.checkpoint_failing.severity), "Severity of failing checkpoints."),
     .choices = severities},
    {OPT("alerts.repeat_interval_s", OT_INT, "14400", CFG(alerts.repeat_interval_s),
         "A firing alert is notified again after this long (webhook and log receivers; "
         "Alertmanager is sent every firing alert at each evaluation)."),
     RANGE(1, 2592000)},
    {OPT("alerts.retry_initial_s", OT_INT, "1", CFG(alerts.retry_initial_s),
         "A notification its receiver did not acknowledge (no 2xx) is tried again after this "
         "long, then after twice as long each time, up to `alerts.retry_max_s`; it stays in the "
         "store until delivered."),
     RANGE(1, 3600)},
    {OPT("alerts.retry_max_s", OT_INT, "300", CFG(alerts.retry_max_s),
         "The longest wait between two tries of an undelivered notification."),
     RANGE(1, 86400)},
    {OPT("alerts.receivers", OT_RECEIVERS, NULL, CFG(alerts.receivers),
         "Where alerts go; see [Alert receivers](#alert-receivers).")},
    {OPT("alerts.routes", OT_ROUTES, NULL, CFG(alerts.routes),
         "Which receivers get which alerts; see [Alert routes](#alert-routes). Without routes, "
         "every receiver gets every alert.")},
    {OPT("cors.allowed_origins", OT_STRLIST, NULL, CFG(cors.allowed_origins),
         "Origins (`https://console.example.com`) whose browsers may call the API: they get "
         "`Access-Control-Allow-Origin` with their own origin (never `*`) and answered "
         "preflight requests. Empty: no cross-origin access.")},
};

/* The keys of one entry of `alerts.receivers`. */
#define RC(field) offsetof(struct receiver_config, field)
static const struct opt receiver_opts[] = {
    {OPT("name", OT_STRING, NULL, RC(name), "The receiver's name, used by routes; unique."),
     .flags = OPT_REQUIRED},
    {OPT("type", OT_CHOICE, NULL, RC(type),
         "`webhook` (POST of the alert as JSON), `alertmanager` (Prometheus Alertmanager API v2) "
         "or `log` (a line in sluice's log)."),
     .choices = receiver_types, .flags = OPT_REQUIRED},
    {OPT("url", OT_STRING, NULL, RC(url),
         "webhook: the URL to POST to; alertmanager: its base URL (`/api/v2/alerts` is added).")},
    {OPT("format", OT_CHOICE, "json", RC(format),
         "webhook only: `json` (sluice's alert document) or `slack` (`{\"text\": ...}`, for Slack "
         "and compatible incoming webhooks)."),
     .choices = webhook_formats},
};

/* The keys of one entry of `alerts.routes`. */
#define RT(field) offsetof(struct route_config, field)
static const struct opt route_opts[] = {
    {OPT("severity", OT_ENUM, NULL, RT(severity), "Match findings of this severity only."),
     .choices = severities},
    {OPT("rule", OT_STRING, NULL, RT(rule), "Match this rule only (`stuck_batches`, ...).")},
    {OPT("dataset", OT_STRING, NULL, RT(dataset), "Match findings about this dataset only.")},
    {OPT("receivers", OT_STRLIST, NULL, RT(receivers),
         "The receivers (by name) of what matches. Every matching route's receivers get the "
         "alert, each once."),
     .flags = OPT_REQUIRED},
};

/* The keys of one entry of `auth.jwt.keys`. */
#define JK(field) offsetof(struct jwt_key_config, field)
static const struct opt jwt_key_opts[] = {
    {OPT("kid", OT_STRING, NULL, JK(kid),
         "The key id a token names in its header (`kid`). A token without `kid` is tried "
         "against every key that allows its `alg`.")},
    {OPT("algorithms", OT_STRLIST, NULL, JK(algorithms),
         "The algorithms this key may verify: HS256/384/512 (secrets), RS256/384/512 and "
         "PS256/384/512 (RSA), ES256/384/512 (P-256/384/521), EdDSA (Ed25519, Ed448). "
         "Required for secrets and PEM keys; a JWKS key's own `alg` is used.")},
    {OPT("secret_file", OT_STRING, NULL, JK(secret_file),
         "A file holding an HMAC secret (a trailing newline is dropped); at least as long as "
         "the hash (32 bytes for HS256).")},
    {OPT("secret_env", OT_STRING, NULL, JK(secret_env),
         "The name of an environment variable holding an HMAC secret.")},
    {OPT("public_key_file", OT_STRING, NULL, JK(public_key_file),
         "A PEM public key (RSA of 2048 bits or more, EC, Ed25519 or Ed448).")},
    {OPT("jwks_file", OT_STRING, NULL, JK(jwks_file),
         "A JWKS file (`{\"keys\": [...]}`, public keys; `oct` keys are secrets): every key in it, "
         "each with its own `kid` and `alg`. Never fetched from a URL.")},
};

/* The keys of one entry of `datasets`. */
static const struct opt ds_opts[] = {
    {OPT("name", OT_NAME, NULL, DS(name),
         "The dataset's name, used in URLs: `^[a-z][a-z0-9_]{0,62}$`, unique."),
     .flags = OPT_REQUIRED},
    {OPT("key", OT_KEY, NULL, DS(key),
         "The properties whose values, together, are unique among the stored rows: one name "
         "(`key: case_number`) or a list of up to 8 (`key: [source, case_number]`), each "
         "declared, of type string or integer, named once. The order is the unique index's "
         "and the order of the values in a `DUPLICATE_KEY` message. Every field of a key of "
         "several must be in the schema's `required`; a key of one field may be optional (a "
         "row without it is stored and is never a duplicate). `[case_number]` is the same key "
         "as `case_number`. A stored dataset's key cannot change.")},
    {OPT("on_duplicate", OT_CHOICE, "reject", DS(on_duplicate),
         "What to do with a row whose key is already stored: `reject` it (DUPLICATE_KEY), "
         "`upsert` it (replace the stored row) or `skip` it. Anything but `reject` needs a `key`."),
     .choices = on_dup_names},
    {OPT("error_threshold_percent", OT_NUMBER, "10", DS(error_threshold_percent),
         "A batch with a larger share of invalid rows than this fails as a whole."),
     RANGE(0, 100)},
    {OPT("expected_every", OT_DURATION, NULL, DS(expected_every_ms),
         "When set, receiving no row for this long is a `source_stalled` finding (warning): "
         "the volume drop users otherwise hear about from their customers.")},
    {OPT("csv_null", OT_STRING, NULL, DS(csv_null),
         "The null string of CSV cells (CSVW's `null`): a cell equal to it, after trimming for "
         "types other than string, is null, so its field is absent, for every type (a required "
         "one is MISSING_REQUIRED_FIELD). When not set, the empty cell is the null string."),
     .flags = OPT_EMPTY_OK},
    {OPT("csv_empty_string", OT_BOOL, "false", DS(csv_empty_string),
         "`true`: an empty CSV cell of a string field is the empty string `\"\"` rather than null "
         "(when `csv_null` is not set). A string property's `csv_empty_string` overrides it.")},
    {OPT("schema", OT_SCHEMA, NULL, DS(schema_json),
         "The schema every row must match: a JSON Schema subset written as YAML (see below)."),
     .flags = OPT_REQUIRED},
};

/* Environment variables, each the same as one command-line flag. */
static const struct {
    const char *var, *option, *flag;
} env_opts[] = {
    {"SLUICE_LISTEN", "listen", "--listen"},
    {"SLUICE_DATA_DIR", "data_dir", "--data-dir"},
    {"SLUICE_DEV_AUTH_BYPASS", "auth.dev_bypass", NULL},
};

/* Units of sizes (powers of 1024, case-insensitive) and durations. */
static const struct {
    char letter;
    uint64_t factor;
} size_units[] = {{'k', 1ULL << 10}, {'m', 1ULL << 20}, {'g', 1ULL << 30}, {'t', 1ULL << 40}};

static const struct {
    const char *suffix, *meaning;
    uint64_t ms;
} duration_units[] = {
    /* longest suffix first among those sharing a letter: "ms" before "m" */
    {"ms", "milliseconds", 1}, {"s", "seconds", 1000},  {"m", "minutes", 60000},
    {"h", "hours", 3600000},   {"d", "days", 86400000},
};

/* The schema keywords, for the docs (the compiler in src/schema/schema.c is the judge). */
static const struct {
    const char *keyword, *where, *meaning;
} schema_keywords[] = {
    {"type", "top level", "if given, must be `object`"},
    {"properties", "top level",
     "a mapping from property name to its definition; names match "
     "`^[A-Za-z][A-Za-z0-9_]{0,62}$`, and no two differ only in case (they become columns, "
     "whose names the stores compare without case)"},
    {"required", "top level", "a list of property names every row must carry"},
    {"additionalProperties", "top level",
     "`false` rejects undeclared fields (UNKNOWN_FIELD); `true` (the default) keeps them"},
    {"type", "property", "`string`, `integer`, `number` or `boolean`"},
    {"minimum, maximum", "property", "inclusive bounds of a number"},
    {"exclusiveMinimum, exclusiveMaximum", "property",
     "exclusive bounds of a number; bounds that no value satisfies (`exclusiveMinimum: 6` with "
     "`exclusiveMaximum: 5`, `minimum: 5` with `exclusiveMaximum: 5`, or, for an integer, no "
     "integer between them) are refused at load"},
    {"minLength, maxLength", "property", "bounds of a string's length in Unicode code points"},
    {"pattern", "property",
     "a PCRE2 regular expression the string must match (unanchored: use `^...$`)"},
    {"enum", "property", "a list of the allowed values"},
    {"format", "property", "`date` (YYYY-MM-DD) or `date-time` (RFC 3339)"},
    {"csv_name", "property",
     "the CSV header the field comes from (any text, e.g. `On Street`); default: its name. "
     "Matched exactly, else without case and surrounding whitespace (docs/api.md, \"CSV cells\")"},
    {"trim", "property",
     "`true`: a string's CSV cells lose their surrounding whitespace (cells of other types, and "
     "date / date-time strings, always do)"},
    {"csv_empty_string", "property",
     "string fields: an empty CSV cell is `\"\"` (`true`) or null (`false`); overrides the "
     "dataset's `csv_empty_string`"},
    {"decimal", "property", "numbers: the decimal separator of CSV cells, `.` (default) or `,`"},
    {"group", "property",
     "integers, numbers: the digit group separator of CSV cells, `,`, `.`, a space, `'` or `_` "
     "(`1,234.50`); a cell not written so is INVALID_NUMBER_FORMAT"},
    {"title, description", "anywhere", "free text, ignored"},
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

/* A short, printable copy of text from the file for an error message. */
static const char *echo(char *buf, size_t cap, const char *s)
{
    size_t n = 0, max = cap > 4 ? cap - 4 : 0;

    for (; s[n] && n < max; n++)
        buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static const struct opt *find_opt(const struct opt *tbl, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tbl[i].name, name) == 0)
            return &tbl[i];
    return NULL;
}

/* Whether some option of tbl is under the section "name." */
static int is_section(const struct opt *tbl, size_t n, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < n; i++)
        if (strncmp(tbl[i].name, name, len) == 0 && tbl[i].name[len] == '.')
            return 1;
    return 0;
}

/* Edit distance of two short strings, capped: anything over 8 is 9. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[NAME_MAX_LEN + 1], cur[NAME_MAX_LEN + 1];

    if (la > NAME_MAX_LEN || lb > NAME_MAX_LEN || (la > lb ? la - lb : lb - la) > 8)
        return 9;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* The option or section of tbl closest to name (within 2 edits) copied to buf, or NULL. */
static const char *suggest(const struct opt *tbl, size_t n, const char *name, char *buf, size_t cap)
{
    size_t best = 3;
    const char *found = NULL;

    for (size_t i = 0; i < n; i++) {
        /* the option itself and each section it is in: "limits" of "limits.max_row_bytes" */
        for (const char *end = tbl[i].name;; end++) {
            size_t len = (size_t)(end - tbl[i].name);
            char cand[NAME_MAX_LEN + 1];
            if ((*end == '.' || *end == '\0') && len < sizeof cand && len < cap) {
                memcpy(cand, tbl[i].name, len);
                cand[len] = '\0';
                size_t d = distance(name, cand);
                if (d < best) {
                    best = d;
                    memcpy(buf, cand, len + 1);
                    found = buf;
                }
            }
            if (*end == '\0')
                break;
        }
    }
    return found;
}

static void *field_ptr(void *base, const struct opt *o)
{
    return (char *)base + o->off;
}

/* ------------------------------------------------------------------------ */
/* Value parsers                                                            */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The YAML 1.2 core schema's special words. */
static const char *const yaml_nulls[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const yaml_trues[] = {"true", "True", "TRUE", NULL};
static const char *const yaml_falses[] = {"false", "False", "FALSE", NULL};
static const char *const yaml_not_json[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                            "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                            ".NaN",  ".NAN",  NULL};

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* Digits at *s into *v (no sign); advances *s. -1 when there are none or on overflow. */
static int parse_digits(const char **s, uint64_t *v)
{
    const char *p = *s;
    uint64_t x = 0;

    if (!is_digit(*p))
        return -1;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *s = p;
    *v = x;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, factor = 1;
    const char *p = s;

    if (!s || parse_digits(&p, &v) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(size_units); i++) {
        if ((*p | 0x20) == size_units[i].letter) {
            factor = size_units[i].factor;
            p++;
            if (*p == 'i' && p[1] == 'B')
                p++;
            break;
        }
    }
    if (*p == 'B')
        p++;
    if (*p != '\0' || v > UINT64_MAX / factor)
        return -1;
    *out = v * factor;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
    uint64_t total = 0, v;
    const char *p = s;

    if (!s)
        return -1;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    do {
        size_t i;
        if (parse_digits(&p, &v) < 0)
            return -1;
        for (i = 0; i < ARRAY_SIZE(duration_units); i++) {
            size_t len = strlen(duration_units[i].suffix);
            if (strncmp(p, duration_units[i].suffix, len) == 0) {
                p += len;
                break;
            }
        }
        if (i == ARRAY_SIZE(duration_units) || v > UINT64_MAX / duration_units[i].ms ||
            v * duration_units[i].ms > UINT64_MAX - total)
            return -1;
        total += v * duration_units[i].ms;
    } while (*p);
    *out = total;
    return 0;
}

static int valid_listen(const char *s)
{
    const char *host = s, *host_end, *port;
    uint64_t v;

    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end[1] != ':')
            return 0;
        port = host_end + 2;
        for (const char *p = host; p < host_end; p++)
            if (!is_digit(*p) && !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f') && *p != ':' &&
                *p != '.')
                return 0;
    } else {
        host_end = strrchr(s, ':');
        if (!host_end)
            return 0;
        port = host_end + 1;
        for (const char *p = host; p < host_end; p++)
            if (!is_digit(*p) && !((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') && *p != '.' &&
                *p != '-')
                return 0;
    }
    if (host_end == host || strlen(port) > 5 || parse_digits(&port, &v) < 0 || *port)
        return 0;
    return v >= 1 && v <= 65535;
}

static int valid_storage(const char *s)
{
    static const char *const schemes[] = {"sqlite:", "postgres://", "postgresql://"};

    for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
        size_t len = strlen(schemes[i]);
        if (strncmp(s, schemes[i], len) == 0)
            return s[len] != '\0';
    }
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = 0;

    if (!(*s >= 'a' && *s <= 'z'))
        return 0;
    for (n = 1; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || is_digit(s[n]) || s[n] == '_'))
            return 0;
    return n <= 63;
}

/* What an option's value should look like, for messages and the docs. */
static const char *expected(const struct opt *o, char *buf, size_t cap)
{
    size_t used;

    if (!o->choices)
        return types[o->type].expect;
    used = (size_t)snprintf(buf, cap, "one of");
    for (size_t i = 0; o->choices[i] && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s %s", i ? "," : "", o->choices[i]);
    return buf;
}

/* Check a parsed number against the option's bounds; 0 when inside. */
static int out_of_range(const struct opt *o, double v, char *why, size_t whylen)
{
    if ((o->flags & OPT_MIN) && (o->flags & OPT_MAX) && (v < o->min || v > o->max)) {
        err_set(why, whylen, "must be between %.15g and %.15g, got %.15g", o->min, o->max, v);
        return 1;
    }
    if ((o->flags & OPT_MIN) && v < o->min) {
        err_set(why, whylen, "must be at least %.15g, got %.15g", o->min, v);
        return 1;
    }
    return 0;
}

static int set_string(char **field, const char *s)
{
    char *copy = sl_strdup(s);

    if (!copy)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* Parse a decimal integer with an optional sign into a long long; -1 if s is not one. */
static int parse_int(const char *s, long long *out)
{
    uint64_t v;
    int neg = (*s == '-');
    const char *p = s + (*s == '-' || *s == '+');

    if (parse_digits(&p, &v) < 0 || *p || v > (uint64_t)LLONG_MAX + (uint64_t)neg)
        return -1;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

/* A YAML 1.2 core integer: decimal, 0x hexadecimal or 0o octal. -1 if it is not one. */
static int parse_core_int(const char *s, long long *out)
{
    int base = s[0] == '0' && s[1] == 'x' ? 16 : s[0] == '0' && s[1] == 'o' ? 8 : 10;
    const char *p = s + 2;
    uint64_t v = 0;

    if (base == 10)
        return parse_int(s, out);
    if (!*p)
        return -1;
    for (; *p; p++) {
        int d = is_digit(*p)                                 ? *p - '0'
                : ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f') ? (*p | 0x20) - 'a' + 10
                                                             : 99;
        if (d >= base || v > ((uint64_t)LLONG_MAX - (unsigned)d) / (unsigned)base)
            return -1;
        v = v * (unsigned)base + (unsigned)d;
    }
    *out = (long long)v;
    return 0;
}

/* [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?, the YAML 1.2 core float. */
static int is_float_text(const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');
    int digits = 0;

    for (; is_digit(*p); p++)
        digits++;
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            digits++;
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += (*p == '-' || *p == '+');
        if (!is_digit(*p))
            return 0;
        while (is_digit(*p))
            p++;
    }
    return *p == '\0';
}

/*
 * Set the option o of the struct at base from text s. On failure returns -1
 * with the reason (without the option name) in why.
 */
static int opt_set_text(const struct opt *o, void *base, const char *s, char *why, size_t whylen)
{
    void *p = field_ptr(base, o);
    char ebuf[128], sbuf[72];
    long long iv;
    uint64_t uv;
    double dv;

    switch (o->type) {
    case OT_STRING:
    case OT_LISTEN:
    case OT_STORAGE:
    case OT_NAME:
        if ((o->type == OT_STRING && *s == '\0' && !(o->flags & OPT_EMPTY_OK)) ||
            (o->type == OT_LISTEN && !valid_listen(s)) ||
            (o->type == OT_STORAGE && !valid_storage(s)) || (o->type == OT_NAME && !valid_name(s)))
            goto bad;
        if (set_string((char **)p, s) < 0)
            goto oom;
        return 0;
    case OT_INT:
        if (parse_int(s, &iv) < 0 || iv < INT_MIN || iv > INT_MAX)
            goto bad;
        if (out_of_range(o, (double)iv, why, whylen))
            return -1;
        *(int *)p = (int)iv;
        return 0;
    case OT_NUMBER:
        if (!is_float_text(s))
            goto bad;
        dv = strtod(s, NULL);
        if (!isfinite(dv))
            goto bad;
        if (out_of_range(o, dv, why, whylen))
            return -1;
        *(double *)p = dv;
        return 0;
    case OT_BOOL:
        if (!is_one_of(s, yaml_trues) && !is_one_of(s, yaml_falses))
            goto bad;
        *(int *)p = is_one_of(s, yaml_trues);
        return 0;
    case OT_SIZE:
    case OT_DURATION:
        if ((o->type == OT_SIZE ? config_parse_size(s, &uv) : config_parse_duration_ms(s, &uv)) < 0)
            goto bad;
        if (out_of_range(o, (double)uv, why, whylen))
            return -1;
        *(uint64_t *)p = uv;
        return 0;
    case OT_ENUM:
    case OT_CHOICE:
        for (int i = 0; o->choices[i]; i++) {
            if (strcmp(s, o->choices[i]) != 0)
                continue;
            if (o->type == OT_CHOICE) {
                *(int *)p = i;
                return 0;
            }
            if (set_string((char **)p, s) < 0)
                goto oom;
            return 0;
        }
        goto bad;
    case OT_SCHEMA:
    case OT_DATASETS:
    case OT_STRLIST:
    case OT_JWTKEYS:
    case OT_RECEIVERS:
    case OT_ROUTES:
    case OT_KEY:
        err_set(why, whylen, "can only be set in the configuration file");
        return -1;
    }
bad:
    err_set(why, whylen, "expected %s, got '%s'", expected(o, ebuf, sizeof ebuf),
            echo(sbuf, sizeof sbuf, s));
    return -1;
oom:
    err_set(why, whylen, "out of memory");
    return -1;
}

_Static_assert(sizeof(enum on_duplicate) == sizeof(int), "OT_CHOICE stores an int");

/*
 * Apply every default of tbl to the struct at base ("derived" ones come later).
 * Fails only when out of memory: every default in the tables parses.
 */
static int apply_defaults(const struct opt *tbl, size_t n, void *base, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        if (!tbl[i].def || (tbl[i].flags & OPT_DERIVED))
            continue;
        if (opt_set_text(&tbl[i], base, tbl[i].def, why, whylen) < 0) {
            assert(strcmp(why, "out of memory") == 0);
            return -1;
        }
    }
    return 0;
}

/* storage = its default with "<data_dir>" replaced by data_dir (trailing '/' dropped). */
static int derive_storage(struct sluice_config *cfg, char *why, size_t whylen)
{
    const struct opt *o = find_opt(opts, ARRAY_SIZE(opts), "storage");
    const char *mark = strstr(o->def, "<data_dir>");
    size_t dlen = strlen(cfg->data_dir);
    char *text = NULL;
    int rc = -1;

    assert(mark);
    while (dlen > 1 && cfg->data_dir[dlen - 1] == '/')
        dlen--;
    if (asprintf(&text, "%.*s%.*s%s", (int)(mark - o->def), o->def, (int)dlen, cfg->data_dir,
                 mark + strlen("<data_dir>")) < 0) {
        text = NULL;
        err_set(why, whylen, "out of memory");
        goto fail;
    }
    if (opt_set_text(o, cfg, text, why, whylen) < 0)
        goto fail;
    rc = 0;
fail:
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading the YAML document                                                */

struct loader {
    const char *file; /* as given, for messages */
    struct sluice_config *cfg;
    char *err;
    size_t errlen;
};

static int fail_at(struct loader *ld, int line, const char *option, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(struct loader *ld, int line, const char *option, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_set(ld->err, ld->errlen, "%s:%d: %s: %s", ld->file, line > 0 ? line : 1, option, msg);
    return -1;
}

/* The 1-based line where a node starts, or 0 when it has no token (an empty value). */
static int node_line(struct fy_node *n)
{
    void *it = NULL;

    if (!n)
        return 0;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        return m ? m->line + 1 : 0;
    }
    case FYNT_MAPPING: {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? node_line(fy_node_pair_key(p)) : 0;
    }
    case FYNT_SEQUENCE:
        return node_line(fy_node_sequence_iterate(n, &it));
    }
    return 0;
}

/* A scalar's value after the YAML 1.2 core schema. */
enum scalar_kind { SK_STRING, SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_NOT_JSON, SK_BAD_TAG };

#define YAML_TAG "tag:yaml.org,2002:"

/* Whether a tag is the standard one called name ("str" for !!str). */
static int tag_is(const char *tag, size_t len, const char *name)
{
    size_t plen = strlen(YAML_TAG);

    return tag && len == plen + strlen(name) && strncmp(tag, YAML_TAG, plen) == 0 &&
           strncmp(tag + plen, name, len - plen) == 0;
}

/* What a scalar with text s is: quoted ones and !!str are strings, plain ones are resolved. */
static enum scalar_kind scalar_kind(struct fy_node *n, const char *s)
{
    static const struct {
        const char *name;
        enum scalar_kind kind;
    } tags[] = {{"null", SK_NULL}, {"bool", SK_BOOL}, {"int", SK_INT}, {"float", SK_FLOAT}};
    size_t taglen = 0;
    const char *tag = fy_node_get_tag(n, &taglen);
    enum scalar_kind k;
    long long iv;

    if (tag_is(tag, taglen, "str") || (!tag && fy_node_get_style(n) != FYNS_PLAIN))
        return SK_STRING;
    if (is_one_of(s, yaml_nulls))
        k = SK_NULL;
    else if (is_one_of(s, yaml_trues) || is_one_of(s, yaml_falses))
        k = SK_BOOL;
    else if (parse_core_int(s, &iv) == 0)
        k = SK_INT;
    else if (is_float_text(s))
        k = SK_FLOAT;
    else if (is_one_of(s, yaml_not_json))
        k = SK_NOT_JSON;
    else
        k = SK_STRING;
    if (!tag)
        return k;
    for (size_t i = 0; i < ARRAY_SIZE(tags); i++) /* !!int etc. must agree with the text */
        if (tag_is(tag, taglen, tags[i].name))
            return k == tags[i].kind || (k == SK_INT && tags[i].kind == SK_FLOAT) ? tags[i].kind
                                                                                  : SK_BAD_TAG;
    return SK_BAD_TAG;
}

static const char *node_kind_name(struct fy_node *n)
{
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING:
        return "a mapping";
    case FYNT_SEQUENCE:
        return "a list";
    default:
        return "a scalar";
    }
}

/*
 * The text of a scalar node (NUL-terminated, owned by the document), or NULL
 * after reporting an error (embedded NUL byte, allocation failure).
 */
static const char *scalar_text(struct loader *ld, struct fy_node *n, int line, const char *option)
{
    size_t len = 0;
    const char *s = fy_node_get_scalar(n, &len);
    const char *s0 = fy_node_get_scalar0(n);

    if (!s0) {
        fail_at(ld, line, option, "cannot read the value");
        return NULL;
    }
    if (s && strlen(s0) != len) {
        fail_at(ld, line, option, "the value contains a NUL byte");
        return NULL;
    }
    return s0;
}

/* Whether a mapping's or list's tag is the ordinary !!map or !!seq. */
static int plain_collection_tag(struct fy_node *n)
{
    size_t len = 0;
    const char *tag = fy_node_get_tag(n, &len);

    return tag_is(tag, len, fy_node_is_mapping(n) ? "map" : "seq");
}

static json_t *yaml_to_json(struct loader *ld, struct fy_node *n, int line, const char *option);

static json_t *mapping_to_json(struct loader *ld, struct fy_node *n, int line, const char *option)
{
    json_t *obj = json_object(), *v = NULL;
    struct fy_node_pair *p;
    void *it = NULL;

    if (!obj)
        goto oom;
    while ((p = fy_node_mapping_iterate(n, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        int kline = node_line(k) ? node_line(k) : line;
        const char *key;
        if (!k || !fy_node_is_scalar(k)) {
            fail_at(ld, kline, option, "a key must be a string, not %s",
                    k ? node_kind_name(k) : "empty");
            goto fail;
        }
        if (!(key = scalar_text(ld, k, kline, option)))
            goto fail;
        if (!(v = yaml_to_json(ld, fy_node_pair_value(p), kline, option)))
            goto fail;
        if (json_object_set_new(obj, key, v) < 0) {
            v = NULL;
            goto oom;
        }
        v = NULL;
    }
    return obj;
oom:
    fail_at(ld, line, option, "out of memory");
fail:
    json_decref(obj);
    return NULL;
}

/* Convert a YAML node to JSON (new reference), or NULL after reporting an error. */
static json_t *yaml_to_json(struct loader *ld, struct fy_node *n, int line, const char *option)
{
    json_t *out = NULL, *item;
    const char *s;
    char sbuf[72];
    void *it = NULL;
    int nline;

    if (!n) /* an empty value */
        return json_null();
    nline = node_line(n) ? node_line(n) : line;
    if (!fy_node_is_scalar(n) && fy_node_get_tag(n, NULL) && !plain_collection_tag(n)) {
        fail_at(ld, nline, option, "unsupported YAML tag on %s", node_kind_name(n));
        return NULL;
    }
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING:
        return mapping_to_json(ld, n, nline, option);
    case FYNT_SEQUENCE: {
        struct fy_node *e;
        if (!(out = json_array()))
            goto oom;
        while ((e = fy_node_sequence_iterate(n, &it))) {
            if (!(item = yaml_to_json(ld, e, nline, option)))
                goto fail;
            if (json_array_append_new(out, item) < 0)
                goto oom;
        }
        return out;
    }
    case FYNT_SCALAR:
        break;
    }
    if (!(s = scalar_text(ld, n, nline, option)))
        return NULL;
    switch (scalar_kind(n, s)) {
    case SK_STRING:
        out = json_string(s);
        break;
    case SK_NULL:
        return json_null();
    case SK_BOOL:
        return json_boolean(is_one_of(s, yaml_trues));
    case SK_INT: {
        long long v = 0;
        (void)parse_core_int(s, &v);
        out = json_integer((json_int_t)v);
        break;
    }
    case SK_FLOAT:
        out = json_real(strtod(s, NULL));
        if (!out) {
            fail_at(ld, nline, option, "the number '%s' is too large for JSON",
                    echo(sbuf, sizeof sbuf, s));
            return NULL;
        }
        break;
    case SK_NOT_JSON:
        fail_at(ld, nline, option, "'%s' cannot be written in JSON", echo(sbuf, sizeof sbuf, s));
        return NULL;
    case SK_BAD_TAG:
        fail_at(ld, nline, option, "unsupported YAML tag on '%s'", echo(sbuf, sizeof sbuf, s));
        return NULL;
    }
    if (!out) {
        fail_at(ld, nline, option, "the string '%s' is not valid UTF-8",
                echo(sbuf, sizeof sbuf, s));
        return NULL;
    }
    return out;
oom:
    fail_at(ld, nline, option, "out of memory");
fail:
    json_decref(out);
    return NULL;
}

static int load_datasets(struct loader *ld, struct fy_node *seq, int line, const char *option);
static int load_jwt_keys(struct loader *ld, struct fy_node *seq, int line, const char *option);
static int load_alert_list(struct loader *ld, enum opt_type t, struct fy_node *seq, int line,
                           const char *option);

static void strlist_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A list of strings (an empty value is an empty list) into *out, NULL-terminated. */
static int load_strlist(struct loader *ld, char ***out, struct fy_node *seq, int line,
                        const char *option)
{
    struct fy_node *item;
    void *it = NULL;
    size_t i = 0;
    strlist_free(*out);
    *out = NULL;
    if (!seq)
        return 0;
    if (!fy_node_is_sequence(seq))
        return fail_at(ld, line, option, "expected a list of strings, got %s", node_kind_name(seq));
    size_t n = (size_t)fy_node_sequence_item_count(seq);
    if (!(*out = sl_calloc(n + 1, sizeof **out)))
        return fail_at(ld, line, option, "out of memory");
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        int l = node_line(item) ? node_line(item) : line;
        const char *s;
        if (!fy_node_is_scalar(item))
            return fail_at(ld, l, option, "expected a string, got %s", node_kind_name(item));
        if (!(s = scalar_text(ld, item, l, option)))
            return -1;
        if (!*s)
            return fail_at(ld, l, option, "an entry is empty");
        if (!((*out)[i++] = sl_strdup(s)))
            return fail_at(ld, l, option, "out of memory");
    }
    return 0;
}

/* A dataset's key, a name or a list of names, into *out in its text form (schema.h); the
 * names are checked against the schema once the whole dataset is read. */
static int load_key(struct loader *ld, char **out, struct fy_node *v, int line, const char *option)
{
    char **names = NULL;
    size_t n = 0;
    free(*out);
    *out = NULL;
    if (!v)
        return 0; /* left empty: no key */
    if (node_line(v))
        line = node_line(v);
    if (fy_node_is_scalar(v)) {
        const char *s = scalar_text(ld, v, line, option);
        if (!s)
            return -1;
        if (scalar_kind(v, s) == SK_NULL)
            return 0;
        if (scalar_kind(v, s) == SK_BAD_TAG)
            return fail_at(ld, line, option, "unsupported YAML tag on the key");
        if (!*s)
            return fail_at(ld, line, option, "expected a property name or a list of them, got ''");
        if (!(*out = sl_strdup(s)))
            return fail_at(ld, line, option, "out of memory");
        return 0;
    }
    if (!fy_node_is_sequence(v))
        return fail_at(ld, line, option, "expected a property name or a list of them, got %s",
                       node_kind_name(v));
    int rc = load_strlist(ld, &names, v, line, option);
    while (rc == 0 && names[n])
        n++;
    if (rc == 0 && n == 0)
        rc = fail_at(ld, line, option,
                     "expected a property name or a list of them, got an empty list");
    else if (rc == 0 && n > SCHEMA_KEY_MAX)
        rc = fail_at(ld, line, option, "a key has at most %d fields, got %zu", SCHEMA_KEY_MAX, n);
    else if (rc == 0 && !(*out = schema_key_text((const char *const *)names, n)))
        rc = fail_at(ld, line, option, "out of memory");
    strlist_free(names);
    return rc;
}

/* Turn the schema mapping into JSON in the dataset at base (compiled by load_dataset, once
 * the dataset's name is known for the messages). */
static int load_schema(struct loader *ld, struct dataset_config *ds, struct fy_node *v, int line,
                       const char *option)
{
    if (!v || !fy_node_is_mapping(v))
        return fail_at(ld, line, option, "expected a mapping (a JSON Schema object), got %s",
                       v ? node_kind_name(v) : "nothing");
    json_decref(ds->schema_json);
    if (!(ds->schema_json = yaml_to_json(ld, v, line, option)))
        return -1;
    return 0;
}

/* Set option o of the struct at base from the YAML value v of the key at line. */
static int opt_set_node(struct loader *ld, const struct opt *o, void *base, struct fy_node *v,
                        int line, const char *option)
{
    char why[400], ebuf[128], sbuf[72];
    const char *s = "";
    enum scalar_kind k = SK_NULL; /* no value node at all is an empty value */

    if (o->type == OT_SCHEMA)
        return load_schema(ld, base, v, line, option);
    if (o->type == OT_DATASETS)
        return load_datasets(ld, v, line, option);
    if (o->type == OT_STRLIST)
        return load_strlist(ld, (char ***)((char *)base + o->off), v, line, option);
    if (o->type == OT_JWTKEYS)
        return load_jwt_keys(ld, v, line, option);
    if (o->type == OT_RECEIVERS || o->type == OT_ROUTES)
        return load_alert_list(ld, o->type, v, line, option);
    if (o->type == OT_KEY)
        return load_key(ld, (char **)((char *)base + o->off), v, line, option);
    if (v && !fy_node_is_scalar(v))
        return fail_at(ld, line, option, "expected %s, got %s", expected(o, ebuf, sizeof ebuf),
                       node_kind_name(v));
    if (v && node_line(v))
        line = node_line(v);
    if (v && !(s = scalar_text(ld, v, line, option)))
        return -1;
    if (v)
        k = scalar_kind(v, s);
    if (k == SK_NULL) {
        if (!o->def && !(o->flags & OPT_REQUIRED))
            return 0; /* an optional value left empty: none */
        return fail_at(ld, line, option, "expected %s, got nothing",
                       expected(o, ebuf, sizeof ebuf));
    }
    if (k == SK_BAD_TAG)
        return fail_at(ld, line, option, "unsupported YAML tag on '%s'",
                       echo(sbuf, sizeof sbuf, s));
    if (k == SK_STRING && (fy_node_get_style(v) != FYNS_PLAIN || fy_node_get_tag(v, NULL)) &&
        (o->type == OT_INT || o->type == OT_NUMBER || o->type == OT_BOOL))
        return fail_at(ld, line, option, "expected %s, got the string '%s'",
                       expected(o, ebuf, sizeof ebuf), echo(sbuf, sizeof sbuf, s));
    if (opt_set_text(o, base, s, why, sizeof why) < 0)
        return fail_at(ld, line, option, "%s", why);
    return 0;
}

/*
 * Walk a mapping against tbl, setting the struct at base. tprefix is the
 * prefix of names in the table ("limits."), dprefix the one shown in messages
 * ("datasets[0]." for a dataset). lines[i] gets the line where tbl[i] was set.
 */
static int walk_mapping(struct loader *ld, struct fy_node *map, const struct opt *tbl, size_t n,
                        void *base, int *lines, const char *tprefix, const char *dprefix)
{
    struct fy_node_pair *p;
    void *it = NULL;

    while ((p = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
        char tname[NAME_MAX_LEN + 1], dname[NAME_MAX_LEN + 1], hint[NAME_MAX_LEN + 1];
        int line = node_line(k);
        const struct opt *o;
        const char *key;

        if (!k || !fy_node_is_scalar(k))
            return fail_at(ld, line ? line : node_line(v), dprefix[0] ? dprefix : "(top level)",
                           "a key must be a name, not %s", k ? node_kind_name(k) : "empty");
        if (!(key = scalar_text(ld, k, line, dprefix[0] ? dprefix : "(top level)")))
            return -1;
        snprintf(tname, sizeof tname, "%s%s", tprefix, key);
        snprintf(dname, sizeof dname, "%s%s", dprefix, key);
        if (strchr(key, '.')) /* one spelling per option, so none is set twice */
            return fail_at(ld, line, dname,
                           "unknown option (write a dotted name as nested mappings)");
        if ((o = find_opt(tbl, n, tname))) {
            if (opt_set_node(ld, o, base, v, line, dname) < 0)
                return -1;
            lines[o - tbl] = line ? line : 1;
            continue;
        } else if (is_section(tbl, n, tname)) {
            char tsub[NAME_MAX_LEN + 2], dsub[NAME_MAX_LEN + 2];
            if (!v || !fy_node_is_mapping(v))
                return fail_at(ld, line, dname, "expected a mapping, got %s",
                               v ? node_kind_name(v) : "nothing");
            snprintf(tsub, sizeof tsub, "%s.", tname);
            snprintf(dsub, sizeof dsub, "%s.", dname);
            if (walk_mapping(ld, v, tbl, n, base, lines, tsub, dsub) < 0)
                return -1;
            continue;
        }
        if (*key && suggest(tbl, n, tname, hint, sizeof hint)) {
            size_t plen = strlen(tprefix);
            return fail_at(ld, line, dname, "unknown option (did you mean '%s'?)",
                           strncmp(hint, tprefix, plen) == 0 ? hint + plen : hint);
        }
        return fail_at(ld, line, dname, "unknown option");
    }
    return 0;
}

/* Load one entry of datasets; index i is the entry's position. */
static int load_dataset(struct loader *ld, struct fy_node *item, size_t i, int line)
{
    struct sluice_config *cfg = ld->cfg;
    struct dataset_config *ds = &cfg->datasets[i];
    int lines[ARRAY_SIZE(ds_opts)] = {0};
    char prefix[32], option[64], why[160];
    size_t ni = (size_t)(find_opt(ds_opts, ARRAY_SIZE(ds_opts), "name") - ds_opts);
    size_t ki = (size_t)(find_opt(ds_opts, ARRAY_SIZE(ds_opts), "key") - ds_opts);
    size_t oi = (size_t)(find_opt(ds_opts, ARRAY_SIZE(ds_opts), "on_duplicate") - ds_opts);

    snprintf(prefix, sizeof prefix, "datasets[%zu].", i);
    snprintf(option, sizeof option, "datasets[%zu]", i);
    if (!item || !fy_node_is_mapping(item))
        return fail_at(ld, node_line(item) ? node_line(item) : line, option,
                       "expected a mapping with name and schema, got %s",
                       item ? node_kind_name(item) : "nothing");
    line = node_line(item) ? node_line(item) : line;
    if (apply_defaults(ds_opts, ARRAY_SIZE(ds_opts), ds, why, sizeof why) < 0)
        return fail_at(ld, line, option, "%s", why);
    if (walk_mapping(ld, item, ds_opts, ARRAY_SIZE(ds_opts), ds, lines, "", prefix) < 0)
        return -1;
    for (size_t j = 0; j < ARRAY_SIZE(ds_opts); j++)
        if ((ds_opts[j].flags & OPT_REQUIRED) && !lines[j])
            return fail_at(ld, line, option, "'%s' is required", ds_opts[j].name);
    {
        size_t si = (size_t)(find_opt(ds_opts, ARRAY_SIZE(ds_opts), "schema") - ds_opts);
        char msg[400] = "";
        if (!(ds->schema = schema_compile(ds->schema_json, msg, sizeof msg))) {
            snprintf(option, sizeof option, "%s%s", prefix, ds_opts[si].name);
            return fail_at(ld, lines[si], option, "%s (dataset '%s')",
                           msg[0] ? msg : "invalid schema", ds->name);
        }
    }
    for (size_t j = 0; j < i; j++) {
        if (strcmp(cfg->datasets[j].name, ds->name) == 0) {
            snprintf(option, sizeof option, "%s%s", prefix, ds_opts[ni].name);
            return fail_at(ld, lines[ni], option, "duplicate dataset name '%s' (datasets[%zu])",
                           ds->name, j);
        }
    }
    if (ds->key) {
        char kwhy[200];
        snprintf(option, sizeof option, "%s%s", prefix, ds_opts[ki].name);
        if (schema_key_parse(ds->schema, ds->key, &ds->key_fields, kwhy, sizeof kwhy) < 0)
            return fail_at(ld, lines[ki], option, "%s", kwhy);
    } else if (ds->on_duplicate != ON_DUP_REJECT) {
        snprintf(option, sizeof option, "%s%s", prefix, ds_opts[oi].name);
        return fail_at(ld, lines[oi], option, "'%s' needs a key",
                       on_duplicate_name(ds->on_duplicate));
    }
    return 0;
}

static int load_datasets(struct loader *ld, struct fy_node *seq, int line, const char *option)
{
    struct sluice_config *cfg = ld->cfg;
    struct fy_node *item;
    void *it = NULL;
    size_t n, i = 0;

    if (!seq || !fy_node_is_sequence(seq))
        return fail_at(ld, line, option, "expected a list of datasets, got %s",
                       seq ? node_kind_name(seq) : "nothing");
    n = (size_t)fy_node_sequence_item_count(seq);
    if (n == 0)
        return 0;
    if (!(cfg->datasets = sl_calloc(n, sizeof *cfg->datasets)))
        return fail_at(ld, line, option, "out of memory");
    cfg->ndatasets = n; /* entries are zeroed, so config_release() can free a partial load */
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        if (load_dataset(ld, item, i, line) < 0)
            return -1;
        i++;
    }
    return 0;
}

/* Load one entry of auth.jwt.keys. */
static int load_jwt_key(struct loader *ld, struct fy_node *item, size_t i, int line)
{
    struct jwt_key_config *k = &ld->cfg->auth.jwt.keys[i];
    int lines[ARRAY_SIZE(jwt_key_opts)] = {0};
    char prefix[48], option[48];
    snprintf(prefix, sizeof prefix, "auth.jwt.keys[%zu].", i);
    snprintf(option, sizeof option, "auth.jwt.keys[%zu]", i);
    if (!item || !fy_node_is_mapping(item))
        return fail_at(ld, node_line(item) ? node_line(item) : line, option,
                       "expected a mapping, got %s", item ? node_kind_name(item) : "nothing");
    k->line = line = node_line(item) ? node_line(item) : line;
    if (walk_mapping(ld, item, jwt_key_opts, ARRAY_SIZE(jwt_key_opts), k, lines, "", prefix) < 0)
        return -1;
    int sources = !!k->secret_file + !!k->secret_env + !!k->public_key_file + !!k->jwks_file;
    if (sources != 1)
        return fail_at(ld, line, option,
                       "give exactly one of secret_file, secret_env, public_key_file, jwks_file");
    if (!k->jwks_file && (!k->algorithms || !k->algorithms[0]))
        return fail_at(ld, line, option, "'algorithms' is required for this key");
    if (k->jwks_file && (k->algorithms || k->kid))
        return fail_at(ld, line, option,
                       "a jwks_file brings its keys' kid and alg: give neither here");
    for (size_t a = 0; k->algorithms && k->algorithms[a]; a++)
        if (!is_one_of(k->algorithms[a], jwt_algorithms))
            return fail_at(ld, line, option,
                           "unknown algorithm '%s' (HS256/384/512, RS256/384/512, "
                           "PS256/384/512, ES256/384/512, EdDSA)",
                           k->algorithms[a]);
    return 0;
}

static int load_jwt_keys(struct loader *ld, struct fy_node *seq, int line, const char *option)
{
    struct sluice_config *cfg = ld->cfg;
    struct fy_node *item;
    void *it = NULL;
    size_t n, i = 0;
    if (!seq)
        return 0;
    if (!fy_node_is_sequence(seq))
        return fail_at(ld, line, option, "expected a list of keys, got %s", node_kind_name(seq));
    n = (size_t)fy_node_sequence_item_count(seq);
    if (n == 0)
        return 0;
    if (!(cfg->auth.jwt.keys = sl_calloc(n, sizeof *cfg->auth.jwt.keys)))
        return fail_at(ld, line, option, "out of memory");
    cfg->auth.jwt.nkeys = n;
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        if (load_jwt_key(ld, item, i, line) < 0)
            return -1;
        i++;
    }
    return 0;
}

/* alerts.receivers or alerts.routes: a list of mappings, each checked. */
static int load_alert_list(struct loader *ld, enum opt_type t, struct fy_node *seq, int line,
                           const char *option)
{
    struct sluice_config *cfg = ld->cfg;
    struct fy_node *item;
    void *it = NULL;
    size_t n, i = 0;
    int recv = t == OT_RECEIVERS;
    if (!seq)
        return 0;
    if (!fy_node_is_sequence(seq))
        return fail_at(ld, line, option, "expected a list, got %s", node_kind_name(seq));
    n = (size_t)fy_node_sequence_item_count(seq);
    if (n == 0)
        return 0;
    if (recv) {
        if (!(cfg->alerts.receivers = sl_calloc(n, sizeof *cfg->alerts.receivers)))
            return fail_at(ld, line, option, "out of memory");
        cfg->alerts.nreceivers = n;
    } else {
        if (!(cfg->alerts.routes = sl_calloc(n, sizeof *cfg->alerts.routes)))
            return fail_at(ld, line, option, "out of memory");
        cfg->alerts.nroutes = n;
    }
    while ((item = fy_node_sequence_iterate(seq, &it)) && i < n) {
        const struct opt *tbl = recv ? receiver_opts : route_opts;
        size_t nt = recv ? ARRAY_SIZE(receiver_opts) : ARRAY_SIZE(route_opts);
        void *base = recv ? (void *)&cfg->alerts.receivers[i] : (void *)&cfg->alerts.routes[i];
        int lines[8] = {0}, l;
        char prefix[48], opt[48], why[160];
        snprintf(prefix, sizeof prefix, "%s[%zu].", option, i);
        snprintf(opt, sizeof opt, "%s[%zu]", option, i);
        if (!item || !fy_node_is_mapping(item))
            return fail_at(ld, node_line(item) ? node_line(item) : line, opt,
                           "expected a mapping, got %s", item ? node_kind_name(item) : "nothing");
        l = node_line(item) ? node_line(item) : line;
        if (apply_defaults(tbl, nt, base, why, sizeof why) < 0)
            return fail_at(ld, l, opt, "%s", why);
        if (walk_mapping(ld, item, tbl, nt, base, lines, "", prefix) < 0)
            return -1;
        for (size_t j = 0; j < nt; j++)
            if ((tbl[j].flags & OPT_REQUIRED) && !lines[j])
                return fail_at(ld, l, opt, "'%s' is required", tbl[j].name);
        if (recv) {
            struct receiver_config *r = &cfg->alerts.receivers[i];
            r->line = l;
            if (r->type != 2 && !r->url)
                return fail_at(ld, l, opt, "a %s receiver needs a url", receiver_types[r->type]);
            for (size_t k = 0; k < i; k++)
                if (strcmp(cfg->alerts.receivers[k].name, r->name) == 0)
                    return fail_at(ld, l, opt, "duplicate receiver name '%s'", r->name);
        } else {
            cfg->alerts.routes[i].line = l;
        }
        i++;
    }
    return 0;
}

/* Every route names known receivers (after both lists are loaded). */
static int check_routes(struct loader *ld)
{
    struct sluice_config *cfg = ld->cfg;
    for (size_t i = 0; i < cfg->alerts.nroutes; i++) {
        struct route_config *r = &cfg->alerts.routes[i];
        for (size_t k = 0; r->receivers && r->receivers[k]; k++) {
            size_t j = 0;
            while (j < cfg->alerts.nreceivers &&
                   strcmp(cfg->alerts.receivers[j].name, r->receivers[k]) != 0)
                j++;
            if (j == cfg->alerts.nreceivers) {
                char opt[48];
                snprintf(opt, sizeof opt, "alerts.routes[%zu]", i);
                return fail_at(ld, r->line, opt, "no receiver named '%s'", r->receivers[k]);
            }
        }
    }
    return 0;
}

/* Every rate_limits.trusted_proxies entry is an IP address, rewritten in the form the
 * server prints a peer's address in (`::FFFF:10.0.0.5` -> `::ffff:10.0.0.5`): they are
 * compared as text. */
static int check_proxies(struct loader *ld, const int *lines)
{
    const char *name = "rate_limits.trusted_proxies";
    char **p = ld->cfg->rate_limits.trusted_proxies;
    for (size_t i = 0; p && p[i]; i++) {
        unsigned char a[16];
        char text[INET6_ADDRSTRLEN];
        int af = strchr(p[i], ':') ? AF_INET6 : AF_INET;
        if (inet_pton(af, p[i], a) != 1 || !inet_ntop(af, a, text, sizeof text))
            return fail_at(ld, lines[find_opt(opts, ARRAY_SIZE(opts), name) - opts], name,
                           "'%s' is not an IP address", p[i]);
        if (set_string(&p[i], text) < 0)
            return fail_at(ld, 1, name, "out of memory");
    }
    return 0;
}

/* Report the first error libfyaml collected, or a generic one. */
static int yaml_error(struct loader *ld, struct fy_diag *diag)
{
    struct fy_diag_error *e;
    void *it = NULL;

    while ((e = fy_diag_errors_iterate(diag, &it)))
        if (e->type >= FYET_ERROR)
            return fail_at(ld, e->line, "YAML syntax error", "%s (column %d)", e->msg, e->column);
    return fail_at(ld, 1, "YAML syntax error", "the file cannot be parsed");
}

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag, (void)user, (void)buf, (void)len;
}

int config_load(const char *path, struct sluice_config *cfg, char *err, size_t errlen)
{
    struct loader ld = {.file = path, .cfg = cfg, .err = err, .errlen = errlen};
    int lines[ARRAY_SIZE(opts)] = {0};
    struct fy_diag_cfg dcfg;
    struct fy_parse_cfg pcfg;
    struct fy_diag *diag = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_document *fyd = NULL, *more = NULL;
    struct fy_node *root;
    FILE *fp = NULL;
    struct stat st;
    char why[400];
    int rc = -1;

    memset(cfg, 0, sizeof *cfg);
    err_set(err, errlen, "%s", "");
    if (apply_defaults(opts, ARRAY_SIZE(opts), cfg, why, sizeof why) < 0) {
        err_set(err, errlen, "%s: %s", path ? path : "(defaults)", why);
        goto fail;
    }
    if (!path)
        goto derive;
    if (!(cfg->path = sl_strdup(path))) {
        err_set(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (!(fp = fopen(path, "r"))) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        err_set(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
        goto fail;
    }
    /* errors are collected, never printed: they come back through err */
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_discard;
    dcfg.level = FYET_ERROR;
    dcfg.colorize = false;
    memset(&pcfg, 0, sizeof pcfg);
    pcfg.flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT;
    if (!(pcfg.diag = diag = fy_diag_create(&dcfg)) || !(fyp = fy_parser_create(&pcfg))) {
        err_set(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    fy_diag_set_collect_errors(diag, true);
    if (fy_parser_set_input_fp(fyp, path, fp) != 0) {
        err_set(err, errlen, "%s: cannot read", path);
        goto fail;
    }
    fyd = fy_parse_load_document(fyp);
    if (ferror(fp)) {
        err_set(err, errlen, "%s: cannot read", path);
        goto fail;
    }
    if (fy_parser_get_stream_error(fyp)) {
        yaml_error(&ld, diag);
        goto fail;
    }
    if (fyd && ((more = fy_parse_load_document(fyp)) || fy_parser_get_stream_error(fyp))) {
        if (more)
            fail_at(&ld, node_line(fy_document_root(more)), "(top level)",
                    "only one YAML document is allowed");
        else
            yaml_error(&ld, diag);
        goto fail;
    }
    root = fyd ? fy_document_root(fyd) : NULL;
    if (root && fy_node_is_scalar(root) && fy_node_get_style(root) == FYNS_PLAIN &&
        !fy_node_get_scalar_token(root))
        root = NULL; /* a document with nothing in it */
    if (root && !fy_node_is_mapping(root)) {
        fail_at(&ld, node_line(root), "(top level)", "expected a mapping of options, got %s",
                node_kind_name(root));
        goto fail;
    }
    if (root && walk_mapping(&ld, root, opts, ARRAY_SIZE(opts), cfg, lines, "", "") < 0)
        goto fail;
    cfg->storage_explicit = lines[find_opt(opts, ARRAY_SIZE(opts), "storage") - opts] != 0;
derive:
    if (!cfg->storage_explicit && derive_storage(cfg, why, sizeof why) < 0) {
        err_set(err, errlen, "%s: storage: %s", path ? path : "(defaults)", why);
        goto fail;
    }
    if (check_routes(&ld) < 0 || check_proxies(&ld, lines) < 0)
        goto fail;
    rc = 0;
fail:
    if (more)
        fy_parse_document_destroy(fyp, more);
    if (fyd)
        fy_parse_document_destroy(fyp, fyd);
    fy_parser_destroy(fyp);
    if (diag)
        fy_diag_destroy(diag);
    if (fp)
        fclose(fp);
    if (rc < 0)
        config_release(cfg);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* After loading                                                            */

int config_set(struct sluice_config *cfg, const char *name, const char *value, char *err,
               size_t errlen)
{
    const struct opt *o = find_opt(opts, ARRAY_SIZE(opts), name);
    char why[400];

    if (!o) {
        err_set(err, errlen, "%s: unknown option", name);
        return -1;
    }
    char *old_dir = cfg->data_dir ? sl_strdup(cfg->data_dir) : NULL;
    if (opt_set_text(o, cfg, value, why, sizeof why) < 0) {
        free(old_dir);
        err_set(err, errlen, "%s: %s", name, why);
        return -1;
    }
    if (o->off == CFG(storage)) {
        cfg->storage_explicit = 1;
    } else if (o->off == CFG(data_dir)) {
        /* An SQLite file that lived in the old data_dir moves with it. */
        size_t ol = old_dir ? strlen(old_dir) : 0;
        if (cfg->storage_explicit && old_dir && strncmp(cfg->storage, "sqlite:", 7) == 0 &&
            strncmp(cfg->storage + 7, old_dir, ol) == 0 && cfg->storage[7 + ol] == '/') {
            size_t n = strlen(cfg->data_dir) + strlen(cfg->storage + 7 + ol) + 8;
            char *st = sl_malloc(n);
            if (!st) {
                free(old_dir);
                err_set(err, errlen, "storage: out of memory");
                return -1;
            }
            snprintf(st, n, "sqlite:%s%s", cfg->data_dir, cfg->storage + 7 + ol);
            free(cfg->storage);
            cfg->storage = st;
        } else if (!cfg->storage_explicit && derive_storage(cfg, why, sizeof why) < 0) {
            free(old_dir);
            err_set(err, errlen, "storage: %s", why);
            return -1;
        }
    }
    free(old_dir);
    return 0;
}

int config_apply_env(struct sluice_config *cfg, char *err, size_t errlen)
{
    char msg[512];

    for (size_t i = 0; i < ARRAY_SIZE(env_opts); i++) {
        const char *v = getenv(env_opts[i].var);
        if (!v || !*v)
            continue;
        if (config_set(cfg, env_opts[i].option, v, msg, sizeof msg) < 0) {
            err_set(err, errlen, "%s: %s", env_opts[i].var, msg);
            return -1;
        }
    }
    return 0;
}

void config_release(struct sluice_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        switch (opts[i].type) {
        case OT_STRING:
        case OT_LISTEN:
        case OT_ENUM:
        case OT_STORAGE:
        case OT_NAME:
            free(*(char **)field_ptr(cfg, &opts[i]));
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < cfg->ndatasets; i++) {
        struct dataset_config *ds = &cfg->datasets[i];
        free(ds->name);
        free(ds->key);
        free(ds->csv_null);
        json_decref(ds->schema_json);
        schema_destroy(ds->schema);
    }
    free(cfg->datasets);
    for (size_t i = 0; i < cfg->auth.jwt.nkeys; i++) {
        struct jwt_key_config *k = &cfg->auth.jwt.keys[i];
        free(k->kid);
        strlist_free(k->algorithms);
        free(k->secret_file);
        free(k->secret_env);
        free(k->public_key_file);
        free(k->jwks_file);
    }
    free(cfg->auth.jwt.keys);
    if (cfg->auth.jwt.keyset && cfg->auth.jwt.keyset_free)
        cfg->auth.jwt.keyset_free(cfg->auth.jwt.keyset);
    strlist_free(cfg->cors.allowed_origins);
    strlist_free(cfg->rate_limits.trusted_proxies);
    for (size_t i = 0; i < cfg->alerts.nreceivers; i++) {
        free(cfg->alerts.receivers[i].name);
        free(cfg->alerts.receivers[i].url);
    }
    free(cfg->alerts.receivers);
    for (size_t i = 0; i < cfg->alerts.nroutes; i++) {
        free(cfg->alerts.routes[i].severity);
        free(cfg->alerts.routes[i].rule);
        free(cfg->alerts.routes[i].dataset);
        strlist_free(cfg->alerts.routes[i].receivers);
    }
    free(cfg->alerts.routes);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

const struct dataset_config *config_dataset(const struct sluice_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->ndatasets; i++)
        if (cfg->datasets[i].name && strcmp(cfg->datasets[i].name, name) == 0)
            return &cfg->datasets[i];
    return NULL;
}

const char *on_duplicate_name(enum on_duplicate d)
{
    return ((unsigned)d < ARRAY_SIZE(on_dup_names) - 1) ? on_dup_names[d] : "unknown";
}

/* ------------------------------------------------------------------------ */
/* The docs page                                                            */

/* Write text for a Markdown table cell: '|' escaped. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void md_type(FILE *out, const struct opt *o)
{
    char buf[128];

    md_cell(out, o->choices ? expected(o, buf, sizeof buf) : types[o->type].doc);
    if ((o->flags & OPT_MIN) && (o->flags & OPT_MAX))
        fprintf(out, ", %.15g to %.15g", o->min, o->max);
    else if (o->flags & OPT_MIN)
        fprintf(out, ", at least %.15g%s", o->min,
                o->type == OT_SIZE       ? " byte"
                : o->type == OT_DURATION ? " ms"
                                         : "");
}

static void md_table(FILE *out, const struct opt *tbl, size_t n, const char *first)
{
    fprintf(out, "| %s | Type | Default | Description |\n|---|---|---|---|\n", first);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "| `%s` | ", tbl[i].name);
        md_type(out, &tbl[i]);
        if (tbl[i].flags & OPT_REQUIRED)
            fputs(" | required | ", out);
        else if (tbl[i].def)
            fprintf(out, " | `%s` | ", tbl[i].def);
        else
            fputs(" | none | ", out);
        md_cell(out, tbl[i].help);
        fputs(" |\n", out);
    }
}

void config_write_docs(FILE *out)
{
    fputs("<!-- Generated by config_write_docs() in src/config/config.c; do not edit. "
          "Regenerate with `make docs`. -->\n"
          "# Configuration\n\n"
          "sluice reads one YAML file, named with `--config FILE` (see "
          "[examples/sluice.yaml](../examples/sluice.yaml)). Every option has a default, so a "
          "file only lists what it changes, but a dataset must be declared to receive rows. "
          "Unknown keys, at any level, and values of the wrong type are errors: sluice refuses "
          "to start and names the file, the line and the option, for example\n\n"
          "```\nsluice.yaml:7: limits.max_body_bytes: expected a size like 64M, got 'lots'\n"
          "```\n\n"
          "## Precedence\n\n"
          "From lowest to highest, a later source overriding an earlier one:\n\n"
          "1. the defaults below;\n"
          "2. the configuration file;\n"
          "3. the environment:",
          out);
    for (size_t i = 0; i < ARRAY_SIZE(env_opts); i++)
        fprintf(out, "%s `%s` sets `%s`", i ? "," : "", env_opts[i].var, env_opts[i].option);
    fputs(" (an empty variable is ignored);\n4. the command line:", out);
    for (size_t i = 0, k = 0; i < ARRAY_SIZE(env_opts); i++)
        if (env_opts[i].flag)
            fprintf(out, "%s `%s`", k++ ? "," : "", env_opts[i].flag);
    fprintf(out,
            ".\n\nWhen `storage` is not set in the file it follows `data_dir`, wherever "
            "`data_dir` comes from: `%s`.\n\n",
            find_opt(opts, ARRAY_SIZE(opts), "storage")->def);

    fputs("## Values\n\n"
          "- A **size** is a whole number of bytes, optionally followed by a unit",
          out);
    for (size_t i = 0; i < ARRAY_SIZE(size_units); i++)
        fprintf(out, "%s `%c` (%llu)",
                i == 0                            ? ""
                : i + 1 == ARRAY_SIZE(size_units) ? " or"
                                                  : ",",
                size_units[i].letter - 0x20, (unsigned long long)size_units[i].factor);
    fputs(", in either case and optionally followed by `B` or `iB`: `1048576`, `1M`, `64MiB`, "
          "`16k`.\n"
          "- A **duration** is one or more whole numbers, each followed by its unit",
          out);
    for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++)
        fprintf(out, "%s `%s` (%s)",
                i == 0                                ? ""
                : i + 1 == ARRAY_SIZE(duration_units) ? " or"
                                                      : ",",
                duration_units[i].suffix, duration_units[i].meaning);
    fputs(": `500ms`, `30s`, `2m`, `24h`, `1h30m`. A bare `0` is zero.\n"
          "- **HOST:PORT** is an IPv4 address, a host name or a bracketed IPv6 address "
          "(`[::1]:8080`), a colon and a port.\n"
          "- A **boolean** is `true` or `false`. Integers, numbers and booleans must not be "
          "quoted.\n\n",
          out);

    fputs("## Options\n\n"
          "A dotted name is a nested mapping: `limits.max_body_bytes: 64M` is written\n\n"
          "```yaml\nlimits:\n  max_body_bytes: 64M\n```\n\n"
          "or, as a flow mapping, `limits: {max_body_bytes: 64M}`.\n\n",
          out);
    md_table(out, opts, ARRAY_SIZE(opts), "Option");

    fputs("\n## Datasets\n\n"
          "`datasets` is a list; each entry declares one dataset with these keys:\n\n",
          out);
    md_table(out, ds_opts, ARRAY_SIZE(ds_opts), "Key");
    fputs("\n## Alert receivers\n\n"
          "`alerts.receivers` is a list; each entry is one receiver:\n\n",
          out);
    md_table(out, receiver_opts, ARRAY_SIZE(receiver_opts), "Key");
    fputs("\n## Alert routes\n\n"
          "`alerts.routes` is a list; each entry sends the alerts it matches (all of its "
          "conditions) to its receivers:\n\n",
          out);
    md_table(out, route_opts, ARRAY_SIZE(route_opts), "Key");
    fputs("\n## JWT keys\n\n"
          "`auth.jwt.keys` is a list; each entry is one key source with these keys (exactly "
          "one of `secret_file`, `secret_env`, `public_key_file`, `jwks_file`):\n\n",
          out);
    md_table(out, jwt_key_opts, ARRAY_SIZE(jwt_key_opts), "Key");
    fputs("\n### Schema\n\n"
          "A schema is a subset of JSON Schema, written in YAML. Quoted scalars are strings; "
          "plain scalars that read as integers, numbers, `true`/`false` or `null` are those "
          "JSON values (`maxLength: 10` is the integer 10, `enum: [\"1\", \"2\"]` a list of "
          "strings). `{type: object}` with nothing else accepts any JSON object. Any keyword "
          "not listed is an error, reported at the line of the dataset's `schema` key.\n\n"
          "| Keyword | Where | Meaning |\n|---|---|---|\n",
          out);
    for (size_t i = 0; i < ARRAY_SIZE(schema_keywords); i++) {
        fputs("| `", out);
        for (const char *k = schema_keywords[i].keyword; *k; k++) {
            if (*k == ',') {
                fputs("`, `", out);
                k++; /* the space after the comma */
                continue;
            }
            fputc(*k, out);
        }
        fprintf(out, "` | %s | ", schema_keywords[i].where);
        md_cell(out, schema_keywords[i].meaning);
        fputs(" |\n", out);
    }
}
