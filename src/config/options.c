/*
 * options.c - the option tables of sluice's configuration, and what reads them.
 *
 * Every option is one row of config_opts[] (and every key of a dataset, an alert
 * receiver or route, a JWT key one row of its own table): its dotted name, its
 * type, its default as text, where it lives in struct sluice_config and its help
 * text. Defaults are applied by parsing the default text with the same code that
 * parses the file (values.c), unknown keys are found by looking names up here
 * (with a suggestion), and docs.c prints the tables as docs/configuration.md, so
 * the code, the defaults and the docs cannot drift. Also here: what is done with
 * a loaded configuration (config_set, config_apply_env, config_release).
 */
#include "config/config_internal.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/mem.h"

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const on_dup_names[] = {"reject", "upsert", "skip", NULL};
static const char *const role_names[] = {"none", "viewer", "ingest", "operator", "admin", NULL};
static const char *const metrics_modes[] = {"loopback", "open", "token", NULL};
static const char *const severities[] = {"warning", "critical", NULL};
const char *const config_receiver_types[] = {"webhook", "alertmanager", "log", NULL};
static const char *const webhook_formats[] = {"json", "slack", NULL};
/* The names auth.jwt.keys[].algorithms may hold: exactly the JOSE names that
 * jwt_alg_from_name() (auth/jwt.h) knows, so that the keys built later take them. */
const char *const config_jwt_algorithms[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                             "RS512", "PS256", "PS384", "PS512", "ES256",
                                             "ES384", "ES512", "EdDSA", NULL};

#define CFG(field) offsetof(struct sluice_config, field)
#define DS(field) offsetof(struct dataset_config, field)
#define OPT(n, t, d, o, h) .name = (n), .type = (t), .def = (d), .off = (o), .help = (h)
#define RANGE(lo, hi) .min = (lo), .max = (hi), .flags = OPT_MIN | OPT_MAX
#define AT_LEAST(lo) .min = (lo), .flags = OPT_MIN

/* The options of the file, in the order of the docs. */
const struct opt config_opts[] = {
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
    {OPT("writer.lock_wait_ms", OT_INT, "200", CFG(writer.lock_wait_ms),
         "PostgreSQL: longest a write waits for a row lock another transaction holds, in ms. A "
         "batch into a dataset with a key is stored by a transaction of its own beside the "
         "pushes: a push of a key that batch has stored and not yet committed waits this long, "
         "then is answered 503 `KEY_BUSY` (nothing of it stored; send it again once the batch "
         "is done) instead of holding up every other push. 0: wait as long as it takes. "
         "Read at start-up; SQLite ignores it."),
     RANGE(0, 600000)},
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
    {OPT("sentinel.rules.job_failing.after_failures", OT_INT, "3",
         CFG(sentinel.job_failing.after_failures),
         "A job whose last this many runs failed (no run succeeded since; skipped and canceled "
         "runs do not count) is a finding, one per job; it resolves once a run succeeds."),
     RANGE(1, 1000000)},
    {OPT("sentinel.rules.job_failing.severity", OT_CHOICE, "warning",
         CFG(sentinel.job_failing.severity), "Severity of a failing job."),
     .choices = severities},
    {OPT("sentinel.rules.job_missed.severity", OT_CHOICE, "warning",
         CFG(sentinel.job_missed.severity),
         "Severity of a missed job: an enabled, unpaused job with a scheduled time, or a queued "
         "run, that did not start within the job's `grace`."),
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
    {OPT("scheduler.enabled", OT_BOOL, "true", CFG(scheduler.enabled),
         "Whether this node runs the scheduler. On PostgreSQL one node at a time runs it (a "
         "lease, as the sentinel's); the others take over when it stops. See "
         "[scheduling.md](scheduling.md).")},
    {OPT("scheduler.lease_s", OT_INT, "30", CFG(scheduler.lease_s),
         "A run's lease: the node running it renews it every third of this; a run whose lease "
         "ends (its node died) is failed with `node lost` and retried when its job says so."),
     RANGE(3, 3600)},
    {OPT("scheduler.max_running", OT_INT, "16", CFG(scheduler.max_running),
         "Most runs at once on this node; more wait, queued, in the order they were due."),
     RANGE(1, 1024)},
    {OPT("jobs", OT_JOBS, NULL, CFG(jobs), "Scheduled jobs; see [Jobs](#jobs).")},
    {OPT("cors.allowed_origins", OT_STRLIST, NULL, CFG(cors.allowed_origins),
         "Origins (`https://console.example.com`) whose browsers may call the API: they get "
         "`Access-Control-Allow-Origin` with their own origin (never `*`) and answered "
         "preflight requests. Empty: no cross-origin access.")},
};

/* The keys of one entry of `alerts.receivers`. */
#define RC(field) offsetof(struct receiver_config, field)
const struct opt config_receiver_opts[] = {
    {OPT("name", OT_STRING, NULL, RC(name), "The receiver's name, used by routes; unique."),
     .flags = OPT_REQUIRED},
    {OPT("type", OT_CHOICE, NULL, RC(type),
         "`webhook` (POST of the alert as JSON), `alertmanager` (Prometheus Alertmanager API v2) "
         "or `log` (a line in sluice's log)."),
     .choices = config_receiver_types, .flags = OPT_REQUIRED},
    {OPT("url", OT_STRING, NULL, RC(url),
         "webhook: the URL to POST to; alertmanager: its base URL (`/api/v2/alerts` is added).")},
    {OPT("format", OT_CHOICE, "json", RC(format),
         "webhook only: `json` (sluice's alert document) or `slack` (`{\"text\": ...}`, for Slack "
         "and compatible incoming webhooks)."),
     .choices = webhook_formats},
};

/* The keys of one entry of `alerts.routes`. */
#define RT(field) offsetof(struct route_config, field)
const struct opt config_route_opts[] = {
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
const struct opt config_jwt_key_opts[] = {
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
const struct opt config_ds_opts[] = {
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
const struct env_opt config_env_opts[] = {
    {"SLUICE_LISTEN", "listen", "--listen"},
    {"SLUICE_DATA_DIR", "data_dir", "--data-dir"},
    {"SLUICE_DEV_AUTH_BYPASS", "auth.dev_bypass", NULL},
};

const size_t config_nopts = ARRAY_SIZE(config_opts);
const size_t config_nreceiver_opts = ARRAY_SIZE(config_receiver_opts);
const size_t config_nroute_opts = ARRAY_SIZE(config_route_opts);
const size_t config_njwt_key_opts = ARRAY_SIZE(config_jwt_key_opts);
const size_t config_nds_opts = ARRAY_SIZE(config_ds_opts);
const size_t config_nenv_opts = ARRAY_SIZE(config_env_opts);

_Static_assert(ARRAY_SIZE(config_opts) <= OPTS_MAX && ARRAY_SIZE(config_ds_opts) <= OPTS_MAX &&
                   ARRAY_SIZE(config_jwt_key_opts) <= OPTS_MAX,
               "the loader keeps one line per option of a table in an int[OPTS_MAX]");
_Static_assert(ARRAY_SIZE(config_receiver_opts) <= 8 && ARRAY_SIZE(config_route_opts) <= 8,
               "the loader keeps one line per key of an alert list entry in an int[8]");

/* ------------------------------------------------------------------------ */
/* Looking names up                                                         */

const struct opt *opt_find(const struct opt *tbl, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tbl[i].name, name) == 0)
            return &tbl[i];
    return NULL;
}

/* Whether some option of tbl is under the section "name." */
int opt_is_section(const struct opt *tbl, size_t n, const char *name)
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
const char *opt_suggest(const struct opt *tbl, size_t n, const char *name, char *buf, size_t cap)
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

/* storage = its default with "<data_dir>" replaced by data_dir (trailing '/' dropped). */
int config_derive_storage(struct sluice_config *cfg, char *why, size_t whylen)
{
    const struct opt *o = opt_find(config_opts, config_nopts, "storage");
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
/* After loading                                                            */

void config_strlist_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

int config_set(struct sluice_config *cfg, const char *name, const char *value, char *err,
               size_t errlen)
{
    const struct opt *o = opt_find(config_opts, config_nopts, name);
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
        } else if (!cfg->storage_explicit && config_derive_storage(cfg, why, sizeof why) < 0) {
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

    for (size_t i = 0; i < config_nenv_opts; i++) {
        const char *v = getenv(config_env_opts[i].var);
        if (!v || !*v)
            continue;
        if (config_set(cfg, config_env_opts[i].option, v, msg, sizeof msg) < 0) {
            err_set(err, errlen, "%s: %s", config_env_opts[i].var, msg);
            return -1;
        }
    }
    return 0;
}

void config_release(struct sluice_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < config_nopts; i++) {
        switch (config_opts[i].type) {
        case OT_STRING:
        case OT_LISTEN:
        case OT_ENUM:
        case OT_STORAGE:
        case OT_NAME:
            free(*(char **)field_ptr(cfg, &config_opts[i]));
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
        config_strlist_free(k->algorithms);
        free(k->secret_file);
        free(k->secret_env);
        free(k->public_key_file);
        free(k->jwks_file);
    }
    free(cfg->auth.jwt.keys);
    if (cfg->auth.jwt.keyset && cfg->auth.jwt.keyset_free)
        cfg->auth.jwt.keyset_free(cfg->auth.jwt.keyset);
    config_strlist_free(cfg->cors.allowed_origins);
    config_strlist_free(cfg->rate_limits.trusted_proxies);
    for (size_t i = 0; i < cfg->alerts.nreceivers; i++) {
        free(cfg->alerts.receivers[i].name);
        free(cfg->alerts.receivers[i].url);
    }
    free(cfg->alerts.receivers);
    for (size_t i = 0; i < cfg->alerts.nroutes; i++) {
        free(cfg->alerts.routes[i].severity);
        free(cfg->alerts.routes[i].rule);
        free(cfg->alerts.routes[i].dataset);
        config_strlist_free(cfg->alerts.routes[i].receivers);
    }
    free(cfg->alerts.routes);
    config_jobs_release(cfg);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

int64_t config_minute_rollups_kept_ms(const struct sluice_config *cfg)
{
    int64_t w = cfg->sentinel.error_rate.window_s > cfg->sentinel.ingest_latency.window_s
                    ? cfg->sentinel.error_rate.window_s
                    : cfg->sentinel.ingest_latency.window_s;
    return 2000LL * w > 48 * 3600 * 1000LL ? 2000LL * w : 48 * 3600 * 1000LL;
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
