/*
 * doctor.c - `sluice doctor`, which checks a host before (or while) sluice
 * runs on it and explains each finding with a remedy, and `sluice ready`, a
 * readiness probe for orchestrators (GET /health/ready).
 *
 * Doctor only looks: it never migrates the database nor creates data_dir. The
 * checks run in order (configuration, data directory, disk, database,
 * migrations, listen address, auth, credentials, clock, alert receivers); a
 * configuration that does not load leaves only the clock to check.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/jwt_keys.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "config/config.h"
#include "store/store.h"
#include "util/buf.h"

#define CLOCK_MIN_EPOCH 1704067200 /* 2024-01-01T00:00:00Z */
#define DISK_FAIL_PCT 10.0
#define DISK_WARN_PCT 20.0
#define PROBE_TIMEOUT_MS 2000L
#define BODY_MAX 4096 /* what a probe keeps of an answer's body */

enum check_status { CHECK_OK = 0, CHECK_WARN, CHECK_FAIL };

static const char *const status_names[] = {"ok", "warn", "fail"};
static const char *const status_tags[] = {"[ok]", "[warn]", "[FAIL]"};

/* The checklist: printed line by line, or gathered for --json. */
struct report {
    int json;
    json_t *checks; /* owned; --json only */
    enum check_status worst;
};

/* What the database check learned, for the checks after it. */
struct db_facts {
    int opened;     /* the file exists and passed quick_check */
    int want;       /* the schema version this binary expects (0: unknown) */
    int version;    /* max(schema_migrations.version), 0 when none */
    long long keys; /* active API keys; 0 when there is no api_keys table, -1 unknown */
};

static void report_add(struct report *r, const char *name, enum check_status st, const char *remedy,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report_add(struct report *r, const char *name, enum check_status st, const char *remedy,
                       const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    for (char *p = detail; (p = strpbrk(p, "\r\n"));)
        *p = ' ';
    if (st > r->worst)
        r->worst = st;
    if (st == CHECK_OK)
        remedy = NULL;
    if (r->json) {
        json_array_append_new(r->checks,
                              json_pack("{s:s,s:s,s:s,s:s?}", "name", name, "status",
                                        status_names[st], "detail", detail, "remedy", remedy));
        return;
    }
    printf("%-6s %-11s %s\n", status_tags[st], name, detail);
    if (remedy)
        printf("       \u2192 %s\n", remedy);
    fflush(stdout);
}

static const char *user_name(void)
{
    struct passwd *pw = getpwuid(geteuid());
    return pw && pw->pw_name ? pw->pw_name : "the sluice user";
}

/* Keeps the first BODY_MAX bytes of an answer and drops the rest. */
static size_t keep_head(char *p, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    size_t room = b->max > b->len + 1 ? b->max - b->len - 1 : 0;
    buf_append(b, p, size * n < room ? size * n : room);
    return size * n;
}

/* GET url within timeout_ms. Returns the HTTP status with the body's head in
 * body, or -1 with the transport error in err. */
static long http_get(const char *url, long timeout_ms, struct buf *body, char *err, size_t errlen)
{
    CURL *h = curl_easy_init();
    long status = -1;
    if (!h) {
        snprintf(err, errlen, "cannot start libcurl");
        return -1;
    }
    struct curl_slist *hdrs = client_auth(NULL);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_head);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cr = curl_easy_perform(h);
    if (cr != CURLE_OK)
        snprintf(err, errlen, "%s", curl_easy_strerror(cr));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return status;
}

/* ---- configuration ------------------------------------------------------- */

static int check_config(struct report *r, const char *path, struct sluice_config *cfg)
{
    char err[1024];
    if (jwt_keys_config_load(path, cfg, err, sizeof err) < 0 ||
        config_apply_env(cfg, err, sizeof err) < 0) {
        report_add(r, "config", CHECK_FAIL,
                   path && access(path, R_OK) < 0
                       ? "check the path given to --config or SLUICE_CONFIG"
                       : "fix the option at the line named, then run sluice doctor again",
                   "%s", err);
        return -1;
    }
    if (!path) {
        report_add(r, "config", CHECK_WARN, "pass --config FILE or set SLUICE_CONFIG",
                   "no file given: built-in defaults, no datasets");
        return 0;
    }
    report_add(r, "config", CHECK_OK, NULL, "%s loads: %zu dataset%s, listen %s", path,
               cfg->ndatasets, cfg->ndatasets == 1 ? "" : "s", cfg->listen);
    return 0;
}

/* ---- data directory and disk --------------------------------------------- */

/* Can this user create a file in dir? Tries one, then removes it. */
static int can_write(const char *dir, int *why)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.sluice-doctor-XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        *why = errno;
        return 0;
    }
    close(fd);
    unlink(tmp);
    return 1;
}

/* Checks data_dir; writes to where the directory the disk check looks at. */
static void check_data_dir(struct report *r, const char *dir, char *where, size_t wlen)
{
    char remedy[4400];
    struct stat sb;
    int why = 0;
    snprintf(where, wlen, "%s", dir);
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            report_add(r, "data_dir", CHECK_FAIL, "point data_dir at a directory",
                       "%s is not a directory", dir);
            where[0] = 0;
        } else if (!can_write(dir, &why)) {
            snprintf(remedy, sizeof remedy, "chown %s %s", user_name(), dir);
            report_add(r, "data_dir", CHECK_FAIL, remedy, "%s is not writable by %s: %s", dir,
                       user_name(), strerror(why));
        } else {
            report_add(r, "data_dir", CHECK_OK, NULL, "%s exists and is writable by %s", dir,
                       user_name());
        }
        return;
    }
    /* Missing: sluice serve creates it, if its nearest existing parent allows. */
    snprintf(remedy, sizeof remedy, "mkdir -p %s && chown %s %s", dir, user_name(), dir);
    char up[4096];
    snprintf(up, sizeof up, "%s", dir);
    for (;;) {
        char *d = dirname(up);
        memmove(up, d, strlen(d) + 1);
        if (stat(up, &sb) == 0 || !strcmp(up, "/") || !strcmp(up, "."))
            break;
    }
    if (stat(up, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        report_add(r, "data_dir", CHECK_FAIL, remedy,
                   "%s does not exist and cannot be created: %s is not a directory", dir, up);
        where[0] = 0;
    } else if (!can_write(up, &why)) {
        report_add(r, "data_dir", CHECK_FAIL, remedy,
                   "%s does not exist and cannot be created: %s is not writable by %s (%s)", dir,
                   up, user_name(), strerror(why));
        snprintf(where, wlen, "%s", up);
    } else {
        report_add(r, "data_dir", CHECK_OK, NULL,
                   "%s does not exist yet; sluice serve will create it (%s is writable)", dir, up);
        snprintf(where, wlen, "%s", up);
    }
}

static void check_disk(struct report *r, const char *where)
{
    struct statvfs vs;
    if (!where[0])
        return;
    if (statvfs(where, &vs) < 0 || vs.f_blocks == 0) {
        report_add(r, "disk", CHECK_WARN, "check the file system under data_dir",
                   "cannot read the free space under %s: %s", where, strerror(errno));
        return;
    }
    double total = (double)vs.f_blocks * vs.f_frsize, avail = (double)vs.f_bavail * vs.f_frsize;
    double pct = 100.0 * avail / total;
    enum check_status st = pct < DISK_FAIL_PCT   ? CHECK_FAIL
                           : pct < DISK_WARN_PCT ? CHECK_WARN
                                                 : CHECK_OK;
    report_add(r, "disk", st, "free space or move data_dir",
               "%.0f MiB free of %.0f MiB (%.0f%%) under %s", avail / 1048576.0, total / 1048576.0,
               pct, where);
}

/* ---- database ------------------------------------------------------------ */

/* The store's schema version, what this binary wants, and its API keys in force. */
static void store_facts(struct store *st, struct db_facts *f)
{
    struct api_key *keys = NULL;
    size_t n = 0;
    f->opened = 1;
    if (store_schema_version(st, &f->version, &f->want) < 0)
        f->want = 0;
    f->keys = 0;
    if (store_key_list(st, &keys, &n) == 0) {
        int64_t now = (int64_t)time(NULL) * 1000;
        for (size_t i = 0; i < n; i++)
            f->keys += !keys[i].revoked_ms && (!keys[i].expires_ms || keys[i].expires_ms > now);
    }
    for (size_t i = 0; i < n; i++)
        api_key_release(&keys[i]);
    free(keys);
}

/* PostgreSQL: connects (read-only), reads the schema version and the active keys. */
static void check_database_pg(struct report *r, const struct sluice_config *cfg, struct db_facts *f)
{
    char err[1024];
    struct store *st = store_open(cfg->storage, 1, err, sizeof err);
    if (!st) {
        report_add(r, "database", CHECK_FAIL,
                   "check the URL, that PostgreSQL runs and accepts this user (PG* variables "
                   "fill in what the URL leaves out)",
                   "%s", err);
        return;
    }
    int have, want;
    if (store_schema_version(st, &have, &want) < 0) {
        store_close(st);
        f->keys = 0;
        report_add(r, "database", CHECK_WARN, "run sluice serve once to create and migrate it",
                   "PostgreSQL answers; no sluice tables yet");
        return;
    }
    char verdict[512];
    if (store_integrity(st, verdict, sizeof verdict) != 0) {
        store_close(st);
        report_add(r, "database", CHECK_FAIL,
                   "REINDEX an index that is not valid; for a missing table or a damaged index, "
                   "restore the database from a backup",
                   "PostgreSQL answers (schema version %d); integrity: %s", have, verdict);
        return;
    }
    store_facts(st, f);
    report_add(r, "database", CHECK_OK, NULL, "PostgreSQL answers (schema version %d); %s", have,
               verdict);
    store_close(st);
}

static void check_database(struct report *r, const struct sluice_config *cfg, struct db_facts *f)
{
    const char *restore = "stop sluice and restore the database from a backup "
                          "(or salvage it: sqlite3 FILE .recover)";
    char err[1024], why[512];
    struct stat sb;
    if (strncmp(cfg->storage, "postgres://", 11) == 0 ||
        strncmp(cfg->storage, "postgresql://", 13) == 0) {
        check_database_pg(r, cfg, f);
        return;
    }
    if (strncmp(cfg->storage, "sqlite:", 7) != 0) {
        report_add(r, "database", CHECK_FAIL, "use storage: sqlite:PATH or a postgres:// URL",
                   "storage %s: unsupported scheme", cfg->storage);
        return;
    }
    const char *path = cfg->storage + 7;
    if (stat(path, &sb) < 0) {
        f->keys = 0;
        report_add(r, "database", CHECK_WARN, "run sluice serve once to create and migrate it",
                   "%s does not exist yet (%s)", path, strerror(errno));
        return;
    }
    struct store *st = store_open(cfg->storage, 0, err, sizeof err);
    if (!st) {
        report_add(r, "database", CHECK_FAIL, restore, "%s", err);
        return;
    }
    struct db_facts got = {0};
    store_facts(st, &got);
    int bad = store_integrity(st, why, sizeof why);
    store_close(st);
    if (bad) {
        report_add(r, "database", CHECK_FAIL, restore, "%s: %s", path, why);
        return;
    }
    *f = got;
    report_add(r, "database", CHECK_OK, NULL, "%s opens, %s (%.1f MiB)", path, why,
               (double)sb.st_size / 1048576.0);
}

static void check_migrations(struct report *r, const struct db_facts *f)
{
    if (!f->opened)
        return;
    int want = f->want;
    if (want <= 0)
        report_add(r, "migrations", CHECK_WARN, "run sluice serve once to create its tables",
                   "the database has no schema_migrations table");
    else if (f->version == want)
        report_add(r, "migrations", CHECK_OK, NULL, "migrations current (%d)", want);
    else if (f->version < want)
        report_add(r, "migrations", CHECK_WARN, "run sluice serve once to migrate",
                   "the database is at %d, this binary expects %d", f->version, want);
    else
        report_add(r, "migrations", CHECK_FAIL, "run the newer sluice that migrated it",
                   "the database is at %d, this binary knows only %d: a newer sluice migrated it",
                   f->version, want);
}

/* ---- listen address ------------------------------------------------------ */

static void check_listen(struct report *r, const char *listen)
{
    char host[256], remedy[512], url[600], err[256];
    const char *colon = strrchr(listen, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host || port <= 0 ||
        port > 65535) {
        report_add(r, "listen", CHECK_FAIL, "write listen as HOST:PORT, e.g. 127.0.0.1:8080",
                   "%s: expected HOST:PORT", listen);
        return;
    }
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']')
        snprintf(host, sizeof host, "%.*s", (int)(hl - 2), listen + 1);
    else
        snprintf(host, sizeof host, "%.*s", (int)hl, listen);
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    socklen_t sl;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sl = sizeof *v4;
        snprintf(url, sizeof url, "http://%s:%d/healthz",
                 v4->sin_addr.s_addr == htonl(INADDR_ANY) ? "127.0.0.1" : host, port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sl = sizeof *v6;
        snprintf(url, sizeof url, "http://[%s]:%d/healthz",
                 IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr) ? "::1" : host, port);
    } else {
        report_add(r, "listen", CHECK_FAIL, "use an IP address, e.g. 127.0.0.1:8080",
                   "%s: not an IP address", listen);
        return;
    }
    int one = 1, fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report_add(r, "listen", CHECK_FAIL, "check the host's network setup",
                   "%s: cannot make a socket: %s", listen, strerror(errno));
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&ss, sl), e = errno;
    close(fd);
    if (rc == 0) {
        report_add(r, "listen", CHECK_OK, NULL, "%s is free to bind", listen);
        return;
    }
    if (e == EADDRINUSE) {
        struct buf body;
        buf_init(&body, BODY_MAX);
        long status = http_get(url, PROBE_TIMEOUT_MS, &body, err, sizeof err);
        int sluice = status == 200 && body.data && strstr(body.data, "\"status\"");
        buf_release(&body);
        if (sluice) {
            report_add(r, "listen", CHECK_OK, NULL,
                       "%s is in use: a sluice is already serving there (/healthz answered 200)",
                       listen);
            return;
        }
        snprintf(remedy, sizeof remedy,
                 "find it with: ss -ltnp 'sport = :%d'; stop it or change listen", port);
        if (status < 0)
            report_add(r, "listen", CHECK_FAIL, remedy,
                       "%s: port in use by something else (/healthz: %s)", listen, err);
        else
            report_add(r, "listen", CHECK_FAIL, remedy,
                       "%s: port in use by something else (/healthz answered %ld)", listen, status);
    } else if (e == EACCES) {
        report_add(r, "listen", CHECK_FAIL,
                   "use a port above 1024, or grant CAP_NET_BIND_SERVICE to the binary",
                   "%s: permission denied", listen);
    } else if (e == EADDRNOTAVAIL) {
        report_add(r, "listen", CHECK_FAIL, "listen on an address of this host",
                   "%s: the address is not on this host", listen);
    } else {
        report_add(r, "listen", CHECK_FAIL, "check the listen address", "%s: cannot bind: %s",
                   listen, strerror(e));
    }
}

/* ---- auth ---------------------------------------------------------------- */

static void check_auth(struct report *r, const struct sluice_config *cfg, const struct db_facts *f)
{
    int loopback = auth_listen_is_loopback(cfg->listen);
    if (cfg->auth.dev_bypass && !loopback)
        report_add(r, "auth", CHECK_FAIL,
                   "turn off auth.dev_bypass, or listen on 127.0.0.1, ::1 or localhost",
                   "auth.dev_bypass is on and listen %s is not loopback: sluice serve refuses "
                   "to start",
                   cfg->listen);
    else if (cfg->auth.dev_bypass)
        report_add(r, "auth", CHECK_WARN, "turn off auth.dev_bypass outside development",
                   "auth.dev_bypass is on: every local caller is admin, without a credential");
    else
        report_add(r, "auth", CHECK_OK, NULL, "every API call needs a credential");

    if (cfg->auth.jwt.nkeys == 0 && f->keys < 0)
        report_add(r, "credentials", CHECK_WARN, "fix the database first, then run doctor again",
                   "no JWT keys; API keys not counted (the database did not pass its check)");
    else if (cfg->auth.jwt.nkeys == 0 && f->keys == 0) {
        char remedy[600];
        snprintf(remedy, sizeof remedy,
                 "sluice keys create --config %s --name admin --role admin (or configure "
                 "auth.jwt.keys)",
                 cfg->path ? cfg->path : "FILE");
        report_add(r, "credentials", CHECK_WARN, remedy,
                   "no JWT keys and no active API keys: no request can authenticate");
    } else
        report_add(r, "credentials", CHECK_OK, NULL, "%zu JWT key%s, %lld active API key%s",
                   cfg->auth.jwt.nkeys, cfg->auth.jwt.nkeys == 1 ? "" : "s",
                   f->keys < 0 ? 0 : f->keys, f->keys == 1 ? "" : "s");
}

/* ---- clock --------------------------------------------------------------- */

/* timedatectl's NTPSynchronized: "yes", "no", or "" when it cannot tell. */
static void ntp_status(char *out, size_t outlen)
{
    out[0] = 0;
    FILE *p = popen("timedatectl show -p NTPSynchronized --value 2>/dev/null", "r");
    if (!p)
        return;
    if (!fgets(out, (int)outlen, p))
        out[0] = 0;
    pclose(p);
    out[strcspn(out, "\r\n")] = 0;
}

static void check_clock(struct report *r)
{
    time_t now = time(NULL);
    struct tm utc, local;
    char stamp[32], ntp[16];
    gmtime_r(&now, &utc);
    localtime_r(&now, &local);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    long off = local.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    ntp_status(ntp, sizeof ntp);
    const char *sync = !strcmp(ntp, "yes")  ? "NTP synchronized"
                       : !strcmp(ntp, "no") ? "NTP not synchronized"
                                            : "NTP status unknown (no timedatectl)";
    enum check_status st = CHECK_OK;
    const char *remedy = NULL;
    if (now < CLOCK_MIN_EPOCH) {
        st = CHECK_WARN;
        remedy = "set the system clock and enable time sync (timedatectl set-ntp true)";
    } else if (!strcmp(ntp, "no")) {
        st = CHECK_WARN;
        remedy = "enable time sync: timedatectl set-ntp true";
    }
    report_add(r, "clock", st, remedy, "%s%s, local time UTC%c%02ld:%02ld (%s), %s", stamp,
               now < CLOCK_MIN_EPOCH ? " is before 2024" : "", sign, off / 3600, off % 3600 / 60,
               local.tm_zone ? local.tm_zone : "?", sync);
}

/* ---- alert receivers ----------------------------------------------------- */

/*
 * The alert receivers (alerts.receivers): one line each, a warning when there
 * are none; with --probe, whether each webhook or Alertmanager answers HTTP at
 * all (no alert is sent; a `log` receiver has nothing to probe).
 */
static size_t ignore_body(char *p, size_t size, size_t n, void *u)
{
    (void)p, (void)u;
    return size * n;
}

/* Whether a receiver's host answers HTTP at all (any status): GET of its URL, or of
 * Alertmanager's /-/ready. 0, or -1 with why. Sends no alert. */
static int probe_receiver(const struct receiver_config *rc, char *why, size_t cap)
{
    char url[600];
    size_t ul = strlen(rc->url);
    while (ul && rc->url[ul - 1] == '/')
        ul--;
    if (rc->type == 1)
        snprintf(url, sizeof url, "%.*s/-/ready", (int)ul, rc->url);
    else
        snprintf(url, sizeof url, "%s", rc->url);
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(why, cap, "curl init failed");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 3L);
    curl_easy_setopt(h, CURLOPT_NOBODY, rc->type == 1 ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ignore_body);
    long status = 0;
    CURLcode cr = curl_easy_perform(h);
    if (cr == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (cr != CURLE_OK) {
        snprintf(why, cap, "%s: %s", url, curl_easy_strerror(cr));
        return -1;
    }
    if (rc->type == 1 && status != 200) {
        snprintf(why, cap, "%s answered %ld", url, status);
        return -1;
    }
    return 0;
}

static void check_alerts(struct report *r, const struct sluice_config *cfg, int probe)
{
    if (!cfg->alerts.nreceivers) {
        report_add(r, "alerts", CHECK_WARN,
                   "add alerts.receivers (webhook, alertmanager or log) so someone hears of "
                   "trouble",
                   "no receivers: findings are only in /api/v1/alerts and the metrics");
        return;
    }
    for (size_t i = 0; i < cfg->alerts.nreceivers; i++) {
        const struct receiver_config *rc = &cfg->alerts.receivers[i];
        static const char *const types[] = {"webhook", "alertmanager", "log"};
        char name[96], why[700];
        snprintf(name, sizeof name, "alerts: %s", rc->name);
        if (!probe || rc->type == 2) {
            report_add(r, name, CHECK_OK, NULL, "%s%s%s%s", types[rc->type], rc->url ? " " : "",
                       rc->url ? rc->url : "", probe ? "" : " (not probed; --probe checks it)");
        } else if (probe_receiver(rc, why, sizeof why) == 0) {
            report_add(r, name, CHECK_OK, NULL, "%s %s answers", types[rc->type], rc->url);
        } else {
            report_add(r, name, CHECK_FAIL,
                       "start the receiver or fix its url (sluice_alert_delivery_failures_total "
                       "counts the deliveries that failed)",
                       "%s does not answer: %s", types[rc->type], why);
        }
    }
}

/* ---- the commands -------------------------------------------------------- */

int cmd_doctor(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"probe", no_argument, NULL, 'p'},
                                       {NULL, 0, NULL, 0}};
    const char *config = getenv("SLUICE_CONFIG");
    int o, probe = 0;
    struct report r = {0};
    optind = 1;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'j':
            r.json = 1;
            break;
        case 'p':
            probe = 1;
            break;
        default:
            fputs(cli_find("doctor")->usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice doctor: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (config && !*config)
        config = NULL;
    if (r.json)
        r.checks = json_array();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct sluice_config cfg;
    if (check_config(&r, config, &cfg) == 0) {
        char where[4096];
        struct db_facts f = {.keys = -1};
        check_data_dir(&r, cfg.data_dir, where, sizeof where);
        check_disk(&r, where);
        check_database(&r, &cfg, &f);
        check_migrations(&r, &f);
        check_listen(&r, cfg.listen);
        check_auth(&r, &cfg, &f);
        check_clock(&r);
        check_alerts(&r, &cfg, probe);
    } else {
        check_clock(&r);
    }
    config_release(&cfg);
    curl_global_cleanup();

    if (r.json) {
        json_t *j = json_pack("{s:s,s:o}", "status", status_names[r.worst], "checks", r.checks);
        char *t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (t)
            puts(t);
        free(t);
        json_decref(j);
    } else {
        printf("\n%s\n", r.worst == CHECK_FAIL   ? "doctor: some checks failed"
                         : r.worst == CHECK_WARN ? "doctor: ok, with warnings"
                                                 : "doctor: all checks passed");
    }
    return r.worst == CHECK_FAIL ? 1 : 0;
}

int cmd_ready(int argc, char **argv)
{
    static const struct option lo[] = {{"url", required_argument, NULL, 'u'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    const char *url_flag = NULL;
    double timeout_s = 5;
    char *end;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'u':
            url_flag = optarg;
            break;
        case 't':
            timeout_s = strtod(optarg, &end);
            if (end == optarg || *end || !(timeout_s > 0) || timeout_s > 3600) {
                fprintf(stderr, "sluice ready: --timeout: expected seconds, got '%s'\n", optarg);
                return 2;
            }
            break;
        default:
            fputs(cli_find("ready")->usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice ready: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    struct buf url, body;
    char err[256];
    buf_init(&url, 8192);
    buf_init(&body, BODY_MAX);
    client_base(url_flag, &url);
    buf_appends(&url, "/health/ready");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long timeout_ms = (long)(timeout_s * 1000);
    long status = http_get(url.data, timeout_ms > 0 ? timeout_ms : 1, &body, err, sizeof err);
    curl_global_cleanup();
    for (size_t i = 0; i < body.len; i++)
        if (body.data[i] == '\n' || body.data[i] == '\r')
            body.data[i] = ' ';
    if (status == 200)
        printf("ready: %s answered 200\n", url.data);
    else if (status < 0)
        printf("not ready: %s: %s\n", url.data, err);
    else
        printf("not ready: %s answered %ld %s\n", url.data, status, body.len ? body.data : "");
    buf_release(&url);
    buf_release(&body);
    return status == 200 ? 0 : 1;
}
