/*
 * client.h - the CLI's HTTP client (libcurl) for talking to a running server.
 */
#ifndef SLUICE_CLI_CLIENT_H
#define SLUICE_CLI_CLIENT_H

#include "util/buf.h"

/* The server's base URL: --url, else SLUICE_URL, else http://127.0.0.1:8080 (no trailing /). */
void client_base(const char *flag, struct buf *url);

/*
 * Send one request; the answer's body goes to out (may be NULL). body/ctype may
 * be NULL. Returns the HTTP status, or -1 when there was no answer (message on
 * stderr). A 401 or 403 is explained on stderr (client_explain).
 */
long client_call(const char *method, const char *url, const char *body, const char *ctype,
                 struct buf *out);
/* client_call with one more request header, a whole line such as "Idempotency-Key: k"
 * (NULL for none; the caller keeps it). */
long client_call_hdr(const char *method, const char *url, const char *body, const char *ctype,
                     const char *header, struct buf *out);

/*
 * After a 401 or 403, say on stderr how to pass a token (SLUICE_TOKEN) or that
 * its role is not enough; nothing for any other status. client_call() does it.
 */
void client_explain(long status);

/* client_call, then print the body on stdout; exit code 0 on 2xx, 1 otherwise. */
int client_print(const char *method, const char *url, const char *body);

/* Append ?name=value / &name=value, URL-escaped, when value is not NULL. */
void client_param(struct buf *url, const char *name, const char *value);
/* The options of a list command, rows of its getopt table (written out in each, so that the
 * docs test sees them): {"limit", 'n'}, {"cursor", 'a'}, {"order", 'O'}, {"since", 'S'},
 * {"until", 'U'}, all with required_argument. */
struct list_opts {
    const char *limit, *cursor, *order, *since, *until;
};
/* Record getopt's o (with its optarg) when it is one of the list options: 1, else 0. */
int client_list_opt(int o, const char *arg, struct list_opts *l);
/* Append l's parameters to url, the times (--since/--until) as since_name/until_name in
 * epoch ms. -1 after a message on stderr for a bad time (a usage error). */
int client_list_params(struct buf *url, const struct list_opts *l, const char *since_name,
                       const char *until_name);
/* client_param for a time given on the command line as --OPT (util/timeparse.h: epoch ms,
 * RFC 3339 or a duration before now such as 24h), sent as epoch ms. -1 after a message on
 * stderr naming the option when value is not a time (a usage error). */
int client_time_param(struct buf *url, const char *name, const char *opt, const char *value);
/* Append "Authorization: Bearer $SLUICE_TOKEN" to hdrs when the variable is set. */
struct curl_slist;
struct curl_slist *client_auth(struct curl_slist *hdrs);

#endif
