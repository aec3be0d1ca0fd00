/*
 * loops.c - the loops and the server's life. http_server_start() runs N loops,
 * each in its own thread with its own listening socket on the same port
 * (SO_REUSEPORT lets the kernel spread connections). Everything about a
 * connection happens on its loop's thread; other threads talk to a loop only
 * through http_post(). Drain stops accepting and closes idle connections;
 * stop closes everything, joins the threads and frees the server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "http/http_internal.h"
#include "http/ratelimit.h"
#include "store/store.h"
#include "util/mem.h"

void http_post(struct http_loop *l, struct loop_msg *m)
{
    pthread_mutex_lock(&l->mu);
    m->next = l->inbox;
    l->inbox = m;
    pthread_mutex_unlock(&l->mu);
    uv_async_send(&l->wake);
}

static void on_wake(uv_async_t *a)
{
    struct http_loop *l = a->data;
    pthread_mutex_lock(&l->mu);
    struct loop_msg *m = l->inbox, *rev = NULL;
    l->inbox = NULL;
    pthread_mutex_unlock(&l->mu);
    while (m) { /* restore arrival order */
        struct loop_msg *n = m->next;
        m->next = rev;
        rev = m;
        m = n;
    }
    while (rev) {
        struct loop_msg *n = rev->next;
        rev->fn(rev);
        rev = n;
    }
}

static void *loop_main(void *arg)
{
    struct http_loop *l = arg;
    pthread_setname_np(pthread_self(), "sl-http");
    uv_run(&l->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "listen '%s': expected HOST:PORT", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535) {
        snprintf(err, errlen, "listen '%s': bad port", listen);
        return -1;
    }
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = 0;
    }
    if (uv_ip4_addr(h, port, (struct sockaddr_in *)ss) != 0 &&
        uv_ip6_addr(h, port, (struct sockaddr_in6 *)ss) != 0) {
        snprintf(err, errlen, "listen '%s': not an IP address", listen);
        return -1;
    }
    return 0;
}

static int loop_init(struct http_server *s, struct http_loop *l, int id, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_listen(s->o.listen, &ss, err, errlen) < 0)
        return -1;
    l->srv = s;
    l->id = id;
    pthread_mutex_init(&l->mu, NULL);
    uv_loop_init(&l->loop);
    l->store = store_open(s->o.store_uri, 1, err, errlen);
    if (!l->store)
        return -1;
    socklen_t sl =
        ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int one = 1;
    if (id == 0) {
        /* SO_REUSEPORT below would let a second sluice share the port with this
         * one; a plain bind first fails when anything already listens there. */
        int probe = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int rc = bind(probe, (struct sockaddr *)&ss, sl);
        int e = errno;
        close(probe);
        if (rc < 0) {
            snprintf(err, errlen, "listen %s: %s", s->o.listen, strerror(e));
            return -1;
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "listen %s: %s", s->o.listen, strerror(errno));
        close(fd);
        return -1;
    }
    uv_tcp_init(&l->loop, &l->listener);
    l->listener.data = l;
    uv_tcp_open(&l->listener, fd);
    int rc = uv_listen((uv_stream_t *)&l->listener, 1024, conn_on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen %s: %s", s->o.listen, uv_strerror(rc));
        return -1;
    }
    uv_async_init(&l->loop, &l->wake, on_wake);
    l->wake.data = l;
    uv_timer_init(&l->loop, &l->tick);
    l->tick.data = l;
    uv_timer_start(&l->tick, conn_on_tick, 250, 250);
    return 0;
}

struct http_server *http_server_start(const struct http_server_opts *o, const struct http_app *app,
                                      char *err, size_t errlen)
{
    struct http_server *s = sl_calloc(1, sizeof *s);
    s->o = *o;
    s->app = app;
    s->nloops = o->threads > 0 ? o->threads : 1;
    s->loops = sl_calloc((size_t)s->nloops, sizeof *s->loops);
    s->loopback = auth_listen_is_loopback(o->listen);
    s->rl = ratelimit_create(o->rate_limit_clients > 0 ? (size_t)o->rate_limit_clients : 65536);
    if (!s->rl) {
        snprintf(err, errlen, "out of memory for rate_limits.max_clients buckets");
        free(s->loops);
        free(s);
        return NULL;
    }
    parser_settings_init(&s->settings);
    for (int i = 0; i < s->nloops; i++)
        if (loop_init(s, &s->loops[i], i, err, errlen) < 0) {
            /* Loops that did start have not run yet: tear them down in place. */
            s->nloops = i + 1;
            http_server_stop(s);
            return NULL;
        }
    for (int i = 0; i < s->nloops; i++)
        pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
    return s;
}

struct loop_cmd {
    struct loop_msg msg;
    struct http_loop *l;
    int stop;
};

/* At stop: close every handle of the loop; connections free themselves. */
static void close_walk(uv_handle_t *h, void *arg)
{
    struct http_loop *l = arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&l->listener) {
        struct http_conn *c = h->data;
        set_busy(c, CONN_IDLE); /* the writer is stopped: no answer can come any more */
        conn_close(c);
    } else {
        uv_close(h, NULL);
    }
}

static void on_cmd(struct loop_msg *m)
{
    struct loop_cmd *cmd = (struct loop_cmd *)m;
    struct http_loop *l = cmd->l;
    int stop = cmd->stop;
    free(cmd);
    if (!stop) {
        l->draining = 1;
        if (!uv_is_closing((uv_handle_t *)&l->listener))
            uv_close((uv_handle_t *)&l->listener, NULL);
        for (struct http_conn *c = l->conns, *n; c; c = n) {
            n = c->next;
            if (c->state == CONN_IDLE)
                conn_close(c);
        }
        return;
    }
    uv_walk(&l->loop, close_walk, l);
}

static void send_cmd(struct http_loop *l, int stop)
{
    struct loop_cmd *cmd = sl_calloc(1, sizeof *cmd);
    cmd->msg.fn = on_cmd;
    cmd->l = l;
    cmd->stop = stop;
    http_post(l, &cmd->msg);
}

void http_server_drain(struct http_server *s)
{
    for (int i = 0; i < s->nloops; i++)
        send_cmd(&s->loops[i], 0);
}

int http_server_busy(struct http_server *s)
{
    int n = 0;
    for (int i = 0; i < s->nloops; i++)
        n += __atomic_load_n(&s->loops[i].busy, __ATOMIC_RELAXED);
    return n;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nloops; i++) {
        struct http_loop *l = &s->loops[i];
        if (l->thread) {
            send_cmd(l, 1);
            pthread_join(l->thread, NULL);
        } else if (l->srv) {
            uv_walk(&l->loop, close_walk, l);
            uv_run(&l->loop, UV_RUN_DEFAULT);
        }
        if (l->srv) {
            uv_loop_close(&l->loop);
            catalog_cache_release(&l->catalog);
            store_close(l->store);
            pthread_mutex_destroy(&l->mu);
        }
    }
    ratelimit_destroy(s->rl);
    free(s->loops);
    free(s);
}
