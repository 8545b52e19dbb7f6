/* http/server.c: GET /health and GET /metrics (Prometheus text) on the main loop, via evhttp. */
#include "envproxy.h"
#include "console.h"
#include "http_api.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Bounds of the HTTP port: a request's headers and body, the time a connection may go
 * without completing a request (idle or trickling bytes), and the connections at once. */
#define HTTP_MAX_HEADERS (8 * 1024)
#define HTTP_MAX_BODY 1024
#define HTTP_TIMEOUT_S 10
#define HTTP_REQUEST_DEADLINE_MS 10000
#define HTTP_MAX_CONNECTIONS 32

/* An HTTP connection being watched. evhttp keeps the connection to itself; it is learnt
 * from the bufferevent made for it (evhttp_set_bevcb), whose callback argument evhttp sets
 * to the connection. */
typedef struct http_conn {
    struct http_conn *prev, *next;
    struct bufferevent *bev; /* with our reference, until the connection is known */
    struct evhttp_connection *evcon;
    uint64_t progress_ms; /* accepted, or its last request answered */
    /* Set while the front door answers a request later (http_conn_busy): the sweep leaves
     * the connection alone, and gone(gone_arg) runs if it closes first. */
    void (*gone)(void *arg);
    void *gone_arg;
    struct evhttp_request *busy_req; /* the request being answered later */
    char busy_user[ROUTE_NAME_MAX + 1]; /* its account */
} http_conn;

static http_conn *conns;
static int n_conns;
static struct event *sweep_ev;
static proxy *http_proxy;  /* its client_write_timeout (the configuration may be reloaded) */
static SSL_CTX *https_ctx; /* http.tls: the MySQL port's context (its pair, or the self-signed one) */

bool http_tls_on(void)
{
    return https_ctx != NULL;
}

static void conn_unlink(http_conn *hc)
{
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    n_conns--;
    free(hc);
}

static void conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    http_conn *hc = arg;
    evhttp_connection_set_closecb(evcon, NULL, NULL); /* once, even if it is reset first */
    void (*gone)(void *) = hc->gone;
    void *gone_arg = hc->gone_arg;
    struct evhttp_request *req = hc->busy_req;
    conn_unlink(hc);
    if (gone)
        gone(gone_arg);
    /* When evhttp itself saw the connection fail (a write to a client that went away, a
     * timeout) while a request was still being answered, it leaves that request to its
     * user, detached from the connection; it frees only the requests still attached. */
    if (req && !evhttp_request_get_connection(req))
        evhttp_request_free(req);
}

/* The watched connection of req (also one whose setup conn_known_cb has not seen yet). */
static http_conn *conn_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    for (http_conn *hc = conns; hc; hc = hc->next)
        if ((evcon && hc->evcon == evcon) || (bev && hc->bev == bev))
            return hc;
    return NULL;
}

/* The answer of req went out whole (evhttp calls this just before it frees req): the
 * connection's idle timeout is the request/keep-alive one again. */
static void answer_complete_cb(struct evhttp_request *req, void *arg)
{
    evhttp_connection_set_timeout(arg, HTTP_TIMEOUT_S);
}

/* While an answer is being produced, evhttp's idle timeout (HTTP_TIMEOUT_S, for reading and
 * writing alike) is the wrong clock: a statement may send nothing for longer than that, and
 * evhttp keeps reading enabled while it writes, so the silence would cut the answer. The
 * statement's own deadline (statement_timeout, then the give-up path) governs instead; the
 * client is watched for going away (gone_cb in api.c, mcp.c); reading gets no timeout and
 * writing gets client_write_timeout, which a bufferevent counts only while output is waiting
 * and restarts at every byte the client takes. answer_complete_cb restores the timeout. */
static void answering_timeouts(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return;
    long long ms = http_proxy ? http_proxy->cfg->client_write_timeout_ms : 0;
    if (ms <= 0)
        ms = (long long)HTTP_TIMEOUT_S * 1000;
    struct timeval w = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    bufferevent_set_timeouts(bev, NULL, &w);
    evhttp_request_set_on_complete_cb(req, answer_complete_cb, evcon);
}

void http_conn_busy(struct evhttp_request *req, const char *user, void (*gone)(void *arg),
                    void *arg)
{
    http_conn *hc = conn_of(req);
    if (hc) {
        hc->gone = gone;
        hc->gone_arg = arg;
        hc->busy_req = req;
        snprintf(hc->busy_user, sizeof(hc->busy_user), "%s", user);
    }
    answering_timeouts(req);
}

short http_gone_events(struct event_base *base)
{
    return (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) ? EV_CLOSED | EV_PERSIST
                                                                      : EV_READ | EV_PERSIST;
}

bool http_user_may_start(const char *user)
{
    int n = 0;
    for (http_conn *hc = conns; hc; hc = hc->next)
        n += hc->gone && strcmp(hc->busy_user, user) == 0;
    return n < HTTP_MAX_BUSY_PER_USER;
}

void http_conn_done(struct evhttp_request *req)
{
    http_conn *hc = conn_of(req);
    if (hc) {
        hc->gone = NULL;
        hc->gone_arg = NULL;
        hc->busy_req = NULL;
        hc->busy_user[0] = '\0';
        hc->progress_ms = now_ms();
    }
}

/* Runs once the connection was set up: find it, or drop it when there are too many. */
static void conn_known_cb(evutil_socket_t fd, short what, void *arg)
{
    http_conn *hc = arg;
    struct bufferevent *bev = hc->bev;
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb;
    void *cbarg = NULL;
    bufferevent_getcb(bev, &rcb, &wcb, &ecb, &cbarg);
    hc->bev = NULL;
    if (!cbarg) {
        /* evhttp already dropped it (bufferevent_free clears the callbacks). */
        bufferevent_decref(bev);
        conn_unlink(hc);
        return;
    }
    hc->evcon = cbarg;
    evhttp_connection_set_closecb(hc->evcon, conn_closed_cb, hc);
    bufferevent_decref(bev);
    if (n_conns > HTTP_MAX_CONNECTIONS) {
        /* The one that has gone the longest without completing a request gives way, not the
         * newcomer: else a few sockets opened and left silent (no credentials needed) would
         * keep everyone out. A connection whose answer is being produced stays. */
        http_conn *victim = NULL;
        for (http_conn *x = conns; x; x = x->next)
            if (x != hc && x->evcon && !x->gone &&
                (!victim || x->progress_ms < victim->progress_ms))
                victim = x;
        log_warn("http: more than %d connections at once; closing the %s",
                 HTTP_MAX_CONNECTIONS, victim ? "one idle the longest" : "newest");
        evhttp_connection_free(victim ? victim->evcon : hc->evcon); /* conn_closed_cb unlinks it */
    }
}

/* A TLS handshake on the HTTP port failed. When the client spoke plain HTTP (OpenSSL names
 * that case), it gets a plain-text 400 saying so before the connection closes, instead of
 * bytes it cannot read; anything else that is not TLS is just closed. The answer is small
 * and the connection new, so the non-blocking write does not fall short. */
static void https_info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_EXIT) || ret > 0 || SSL_is_init_finished(ssl))
        return;
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_SSL ||
        (ERR_GET_REASON(e) != SSL_R_HTTP_REQUEST && ERR_GET_REASON(e) != SSL_R_HTTPS_PROXY_REQUEST))
        return;
    SSL_set_info_callback((SSL *)ssl, NULL); /* once */
    static const char answer[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        "Content-Length: 55\r\n\r\nThis port speaks HTTPS only: use https:// to reach it.\n";
    int fd = SSL_get_fd(ssl);
    if (fd >= 0 && send(fd, answer, sizeof(answer) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_debug("http: a plain HTTP request on the HTTPS port; the connection is closed");
}

static struct bufferevent *conn_new_cb(struct event_base *base, void *arg)
{
    struct bufferevent *bev;
    if (https_ctx) {
        SSL *ssl = SSL_new(https_ctx);
        if (!ssl)
            return NULL;
        SSL_set_info_callback(ssl, https_info_cb);
        /* The fd comes from evhttp (bufferevent_setfd); the handshake starts with the first
         * read. A handshake that fails is an error event: evhttp closes the connection. */
        bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            SSL_free(ssl);
            return NULL;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev)
        return NULL;
    http_conn *hc = calloc(1, sizeof(*hc));
    if (!hc)
        abort();
    bufferevent_incref(bev); /* valid until conn_known_cb looked at it */
    hc->bev = bev;
    hc->progress_ms = now_ms();
    hc->next = conns;
    if (conns)
        conns->prev = hc;
    conns = hc;
    n_conns++;
    struct timeval now = {0, 0};
    event_base_once(base, -1, EV_TIMEOUT, conn_known_cb, hc, &now);
    return bev;
}

/* A request was answered on req's connection: its deadline starts again. */
static void note_progress(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (http_conn *hc = conns; hc; hc = hc->next)
        if (hc->evcon == evcon)
            hc->progress_ms = now_ms();
}

/* Closes connections that completed no request within the deadline: a client that sends
 * a byte now and then never trips evhttp's inactivity timeout. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    if (http_proxy)
        http_accounts_follow(http_proxy);
    uint64_t now = now_ms();
    http_conn *hc = conns;
    while (hc) {
        http_conn *next = hc->next;
        if (hc->evcon && !hc->gone && now - hc->progress_ms >= HTTP_REQUEST_DEADLINE_MS) {
            log_info("http: closing a connection that completed no request in %d ms",
                     HTTP_REQUEST_DEADLINE_MS);
            evhttp_connection_free(hc->evcon); /* conn_closed_cb unlinks it */
        }
        hc = next;
    }
}

bool http_framing_ok(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    int n_cl = 0, n_te = 0;
    bool te_ok = true;
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, "Content-Length") == 0)
            n_cl++;
        else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) {
            n_te++;
            te_ok &= strcasecmp(kv->value, "chunked") == 0;
        }
    }
    if (n_cl <= 1 && n_te <= 1 && te_ok)
        return true;
    log_info("http: a request with %s; answered 400 and closed",
             n_cl > 1 ? "more than one Content-Length" : "a Transfer-Encoding other than chunked");
    note_progress(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    evhttp_send_error(req, 400, "Bad Request: ambiguous body length (Content-Length, "
                                "Transfer-Encoding)");
    return false;
}

static void json_string(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(b, "\\u%04x", ch);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void health_cb(struct evhttp_request *req, void *arg)
{
    proxy *p = arg;
    if (!http_framing_ok(req))
        return;
    struct evbuffer *b = evbuffer_new();
    bool serving = !atomic_load(&p->draining) && !atomic_load(&p->stopping);
    evbuffer_add_printf(b, "{\"status\":\"%s\",\"environments\":[",
                        serving ? "serving" : "stopping");
    const config *cfg = p->cfg;
    for (int i = 0; i < cfg->n_envs; i++) {
        health_view hv;
        health_get(&p->health[cfg->envs[i].slot], &hv);
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        json_string(b, cfg->envs[i].name);
        evbuffer_add_printf(b, ",\"status\":\"%s\"",
                            hv.known ? (hv.up ? "up" : "down") : "unknown");
        if (hv.known && hv.up)
            evbuffer_add_printf(b, ",\"latency_ms\":%.3f", hv.latency_ms);
        if (hv.known && !hv.up) {
            evbuffer_add_printf(b, ",\"last_error\":");
            json_string(b, hv.last_error);
        }
        /* Whether envproxy's backend account there could change things (SHOW GRANTS). */
        evbuffer_add_printf(b, ",\"backend_writable\":\"%s\"", health_writable_name(hv.writable));
        if (hv.writable != 0 && hv.privileges[0]) {
            evbuffer_add_printf(b, ",\"backend_privileges\":");
            json_string(b, hv.privileges);
        }
        evbuffer_add_printf(b, ",\"checked_at\":%lld}", hv.checked_at);
    }
    evbuffer_add_printf(b, "]}\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    note_progress(req);
    evhttp_send_reply(req, serving ? 200 : 503, serving ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
    proxy *p = arg;
    if (!http_framing_ok(req))
        return;
    struct evbuffer *b = evbuffer_new();
    metrics_render(p, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    note_progress(req);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void other_cb(struct evhttp_request *req, void *arg)
{
    if (!http_framing_ok(req))
        return;
    note_progress(req);
    evhttp_send_error(req, 404, "Not Found: try /health or /metrics");
}

int http_start(proxy *p)
{
    const cfg_addr *a = p->cfg->http;
    if (!a)
        return 0;
    p->http = evhttp_new(p->base);
    if (!p->http)
        return -1;
    http_proxy = p;
    evhttp_set_allowed_methods(p->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(p->http, "/health", health_cb, p);
    evhttp_set_cb(p->http, "/metrics", metrics_cb, p);
    evhttp_set_gencb(p->http, other_cb, p);
    evhttp_set_timeout(p->http, HTTP_TIMEOUT_S);
    evhttp_set_max_headers_size(p->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(p->http, HTTP_MAX_BODY);
    https_ctx = p->cfg->http_tls ? p->tls_ctx : NULL;
    evhttp_set_bevcb(p->http, conn_new_cb, p);
    /* /api/v1 and /mcp (http/api.c): other paths still get 404; API bodies may be larger. */
    http_api_register(p, p->http);
    /* The web console: GET / and /assets/... (http/console.c). */
    http_console_register(p, p->http);
    sweep_ev = event_new(p->base, -1, EV_PERSIST, sweep_cb, NULL);
    struct timeval second = {1, 0};
    if (!sweep_ev || event_add(sweep_ev, &second))
        abort();
    if (!evhttp_bind_socket_with_handle(p->http, a->host, (ev_uint16_t)a->port)) {
        log_error("http: cannot listen on %s:%d", a->host, a->port);
        evhttp_free(p->http);
        p->http = NULL;
        return -1;
    }
    log_info("http: /health, /metrics, /api/v1 and /mcp on %s://%s:%d",
             https_ctx ? "https" : "http", a->host, a->port);
    return 0;
}

void http_stop(proxy *p)
{
    if (p->http) {
        evhttp_free(p->http); /* closes every connection: conn_closed_cb unlinks them */
        p->http = NULL;
        http_mcp_shutdown();
    }
    if (sweep_ev) {
        event_free(sweep_ev);
        sweep_ev = NULL;
    }
}
