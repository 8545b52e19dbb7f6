/* http/mcp.c: MCP over Streamable HTTP at /mcp. The tools are mcp.c's own: each MCP session
 * has an mcp_server whose connection is an ordinary MySQL client of this proxy, logged in with
 * a ticket (a random password kept in memory while the session lasts), so grants, policy,
 * limits and the audit log (via "mcp") are the MySQL port's. A request's messages are handled
 * on a thread of their own (the tools block); the main loop only parses and answers. */
#include "http_api.h"
#include "http_sql.h"
#include "log.h"
#include "mcp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MCP_MAX_SESSIONS 256
#define MCP_MAX_SESSIONS_PER_USER 32
#define MCP_MAX_RUNNING 32          /* requests handled at once, over all sessions */
#define MCP_SESSION_IDLE (3600)     /* seconds without a request before a session ends */
#define MCP_MAX_ROWS 1000

typedef struct mcp_sess {
    struct mcp_sess *next;
    char id[65];
    char user[ROUTE_NAME_MAX + 1];
    uint8_t sha1_stage2[20], sha256_stage2[32]; /* of the ticket */
    mcp_server *srv;
    pthread_mutex_t run_mu; /* one request at a time uses srv */
    int refs;               /* the registry's, plus one per running request */
    json *running_ids;      /* under mcp_mu: the ids of the requests srv is answering now */
    bool ended;
    long long last_used;
} mcp_sess;

static pthread_mutex_t mcp_mu = PTHREAD_MUTEX_INITIALIZER; /* sessions, refs */
static mcp_sess *mcp_sessions;
static int mcp_n_sessions;
static int mcp_running;

bool http_mcp_ticket_ok(const char *user, const uint8_t *scramble, const uint8_t *auth,
                        size_t auth_len, bool sha2)
{
    if (auth_len == 0 || (auth_len == 1 && auth[0] == 0))
        return false; /* a ticket is never empty */
    bool ok = false;
    pthread_mutex_lock(&mcp_mu);
    for (mcp_sess *s = mcp_sessions; s && !ok; s = s->next) {
        if (s->ended || strcmp(s->user, user) != 0)
            continue;
        ok = sha2 ? acct_verify_sha2(s->sha256_stage2, scramble, auth, auth_len)
                  : acct_verify_native(s->sha1_stage2, scramble, auth, auth_len);
    }
    pthread_mutex_unlock(&mcp_mu);
    return ok;
}

static void sess_put(mcp_sess *s)
{
    pthread_mutex_lock(&mcp_mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&mcp_mu);
    if (last) {
        json_free(s->running_ids);
        mcp_server_free(s->srv);
        pthread_mutex_destroy(&s->run_mu);
        OPENSSL_cleanse(s, sizeof(*s));
        free(s);
    }
}

/* Unlinks s (under mcp_mu) and drops the registry's reference. */
static void sess_end_locked(mcp_sess *s)
{
    for (mcp_sess **pp = &mcp_sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            mcp_n_sessions--;
            break;
        }
    s->ended = true;
}

/* Ends sessions idle for too long. */
static void sess_sweep(void)
{
    long long now = (long long)time(NULL);
    mcp_sess *gone[MCP_MAX_SESSIONS];
    int n = 0;
    pthread_mutex_lock(&mcp_mu);
    for (mcp_sess *s = mcp_sessions, *next; s; s = next) {
        next = s->next;
        if (now - s->last_used > MCP_SESSION_IDLE && n < MCP_MAX_SESSIONS) {
            sess_end_locked(s);
            gone[n++] = s;
        }
    }
    pthread_mutex_unlock(&mcp_mu);
    for (int i = 0; i < n; i++)
        sess_put(gone[i]);
}

/* The hex SHA-1 fingerprint of the certificate the MySQL port presents: the tools'
 * connection pins it (it may be the self-signed one made at start-up, which no CA vouches
 * for). */
static void own_fingerprint(proxy *p, char out[2 * EVP_MAX_MD_SIZE + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    X509 *crt = p->tls_ctx ? SSL_CTX_get0_certificate(p->tls_ctx) : NULL;
    if (!crt || X509_digest(crt, EVP_sha1(), md, &n) != 1) {
        memset(out, '0', 40); /* matches no certificate: the connection fails, never unchecked */
        out[40] = '\0';
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static mcp_sess *sess_new(proxy *p, const char *user)
{
    mcp_sess *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    unsigned char rnd[32];
    char ticket[65];
    static const char hex[] = "0123456789abcdef";
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        abort();
    for (int i = 0; i < 32; i++) {
        ticket[2 * i] = hex[rnd[i] >> 4];
        ticket[2 * i + 1] = hex[rnd[i] & 15];
    }
    ticket[64] = '\0';
    acct_hash_password(ticket, s->sha1_stage2, s->sha256_stage2);
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        abort();
    for (int i = 0; i < 32; i++) {
        s->id[2 * i] = hex[rnd[i] >> 4];
        s->id[2 * i + 1] = hex[rnd[i] & 15];
    }
    s->id[64] = '\0';
    snprintf(s->user, sizeof(s->user), "%s", user);
    const config *cfg = p->cfg;
    const cfg_addr *a = &cfg->listen[0];
    const char *host = strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0 ||
                               a->host[0] == '\0'
                           ? "127.0.0.1"
                           : a->host;
    char fp[2 * EVP_MAX_MD_SIZE + 1];
    own_fingerprint(p, fp);
    s->srv = mcp_server_new(host, (unsigned)a->port, user, ticket, fp, MCP_MAX_ROWS);
    OPENSSL_cleanse(ticket, sizeof(ticket));
    OPENSSL_cleanse(rnd, sizeof(rnd));
    pthread_mutex_init(&s->run_mu, NULL);
    s->refs = 1;
    s->last_used = (long long)time(NULL);
    return s;
}

/* The session named id for user, with a reference taken; NULL when unknown. */
static mcp_sess *sess_get(const char *id, const char *user)
{
    mcp_sess *found = NULL;
    pthread_mutex_lock(&mcp_mu);
    for (mcp_sess *s = mcp_sessions; s; s = s->next)
        if (strlen(id) == 64 && CRYPTO_memcmp(s->id, id, 64) == 0 &&
            strcmp(s->user, user) == 0) {
            found = s;
            s->refs++;
            s->last_used = (long long)time(NULL);
            break;
        }
    pthread_mutex_unlock(&mcp_mu);
    return found;
}

/* ---- answering ------------------------------------------------------------------------------ */

static void reply(struct evhttp_request *req, int status, const char *why, const char *body,
                  size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    if (body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(b, body, len);
    }
    evhttp_add_header(h, "Cache-Control", "no-store");
    http_api_count_status(status);
    http_conn_done(req);
    evhttp_send_reply(req, status, why, b);
    evbuffer_free(b);
}

/* A JSON-RPC error outside any session (HTTP-level problems). */
static void reply_rpc_error(struct evhttp_request *req, int status, const char *why, int code,
                            const char *msg)
{
    json_buf b;
    json_buf_init(&b);
    json_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":%d,\"message\":",
                    code);
    json_write_string(&b, msg, strlen(msg));
    json_buf_puts(&b, "}}");
    reply(req, status, why, b.data, b.len);
    json_buf_free(&b);
}

/* One request handled on its own thread. */
typedef struct {
    proxy *p;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *done_ev;
    mcp_sess *sess;
    json *msg;
    json *named;  /* the named queries the account may run, as tools */
    char *answer; /* serialized reply, NULL for none */
    size_t answer_len;
    bool initialize;
    bool init_ok; /* initialize: answered with a result (not an error) */
    bool gone; /* the HTTP client went away */
    struct event *gone_ev;
    char addr[64], host[48];
} mcp_job;

static void job_free(mcp_job *j)
{
    json_free(j->named);
    json_free(j->msg);
    free(j->answer);
    if (j->done_ev)
        event_free(j->done_ev);
    if (j->gone_ev)
        event_free(j->gone_ev);
    sess_put(j->sess);
    free(j);
}

static void job_conn_closed(void *arg)
{
    mcp_job *j = arg;
    j->gone = true; /* the thread finishes; its answer is dropped */
}

static void job_done(evutil_socket_t fd, short what, void *arg)
{
    mcp_job *j = arg;
    if (j->gone_ev)
        event_del(j->gone_ev);
    pthread_mutex_lock(&mcp_mu);
    mcp_running--;
    pthread_mutex_unlock(&mcp_mu);
    if (j->initialize && (j->gone || !j->init_ok)) {
        /* An initialize that failed (or whose client left) starts no session: the client
         * never learns its id, and it would hold a place until it idled out. */
        pthread_mutex_lock(&mcp_mu);
        bool registered = !j->sess->ended;
        if (registered)
            sess_end_locked(j->sess);
        pthread_mutex_unlock(&mcp_mu);
        if (registered)
            sess_put(j->sess); /* the registry's; job_free drops the job's */
    }
    if (!j->gone) {
        if (j->initialize && j->init_ok)
            evhttp_add_header(evhttp_request_get_output_headers(j->req), "Mcp-Session-Id",
                              j->sess->id);
        if (j->answer)
            reply(j->req, 200, "OK", j->answer, j->answer_len);
        else
            reply(j->req, 202, "Accepted", NULL, 0);
    }
    job_free(j);
}

static bool is_request(const json *m);

static void *job_thread(void *arg)
{
    mcp_job *j = arg;
    pthread_mutex_lock(&j->sess->run_mu);
    /* What a notifications/cancelled may name while this runs. */
    json *ids = json_new_array();
    size_t n = j->msg->type == JSON_ARRAY ? j->msg->u.arr.n : 1;
    for (size_t i = 0; i < n; i++) {
        const json *x = j->msg->type == JSON_ARRAY ? j->msg->u.arr.items[i] : j->msg;
        if (is_request(x))
            json_array_add(ids, json_clone(json_get(x, "id")));
    }
    pthread_mutex_lock(&mcp_mu);
    j->sess->running_ids = ids;
    pthread_mutex_unlock(&mcp_mu);
    mcp_server_set_named(j->sess->srv, j->named);
    j->named = NULL;
    json *r = mcp_server_handle(j->sess->srv, j->msg);
    pthread_mutex_lock(&mcp_mu);
    j->sess->running_ids = NULL;
    pthread_mutex_unlock(&mcp_mu);
    json_free(ids);
    pthread_mutex_unlock(&j->sess->run_mu);
    if (r) {
        j->init_ok = json_get(r, "result") != NULL;
        j->answer = json_serialize(r, &j->answer_len);
        json_free(r);
    }
    event_active(j->done_ev, EV_READ, 0);
    return NULL;
}

/* ---- cancellation ---------------------------------------------------------------------------- */

typedef struct {
    hsql *s;
    char sql[64];
} kill_job;

static void kill_done(hsql *s, void *arg)
{
    kill_job *k = arg;
    hsql_free(s);
    free(k);
}

static void kill_opened(hsql *s, void *arg)
{
    kill_job *k = arg;
    if (hsql_get_result(s)->err) {
        kill_done(s, k);
        return;
    }
    hsql_query(s, k->sql, strlen(k->sql), NULL, kill_done, k);
}

/* notifications/cancelled: stop the statement the session's tools are running, with KILL
 * QUERY through an internal session of the same account (the proxy allows it for one's own
 * connections). */
static void cancel_running(proxy *p, mcp_sess *s, const char *addr, const char *host)
{
    unsigned long id = mcp_server_connection_id(s->srv);
    if (!id)
        return;
    kill_job *k = calloc(1, sizeof(*k));
    if (!k)
        abort();
    snprintf(k->sql, sizeof(k->sql), "KILL QUERY %lu", id);
    internal_login l;
    memset(&l, 0, sizeof(l));
    snprintf(l.user, sizeof(l.user), "%s", s->user);
    snprintf(l.addr, sizeof(l.addr), "%s", addr);
    snprintf(l.host, sizeof(l.host), "%s", host);
    snprintf(l.via, sizeof(l.via), "mcp");
    k->s = hsql_open(p, &l, kill_opened, k);
    if (!k->s)
        free(k);
}

/* The HTTP client went away while its tool call runs (see http/api.c's gone_cb): the
 * statement is killed and the connection dropped; the thread's answer is then discarded. */
static void job_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    mcp_job *j = arg;
    char ch;
    ssize_t n = (what & EV_CLOSED) ? 0 : recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return; /* nothing after all: keep watching */
    event_del(j->gone_ev);
    if (n > 0)
        return; /* bytes of a next request: evhttp's to read */
    cancel_running(j->p, j->sess, j->addr, j->host);
    j->gone = true;
    evhttp_connection_free(j->evcon); /* calls job_conn_closed through http/server.c */
}

static bool is_request(const json *m)
{
    return m->type == JSON_OBJECT && json_get(m, "method") && json_get(m, "id");
}

/* Whether m is a JSON-RPC notification (a method, no id) or a response (an id, a result or
 * an error, no method): what the transport accepts with 202 and no answer. */
static bool is_notification_or_response(const json *m)
{
    const char *ver = json_string_value(json_get(m, "jsonrpc"));
    if (m->type != JSON_OBJECT || !ver || strcmp(ver, "2.0") != 0)
        return false;
    const json *method = json_get(m, "method"), *id = json_get(m, "id");
    if (method)
        return method->type == JSON_STRING && !id;
    return id && (id->type == JSON_STRING || id->type == JSON_NUMBER || id->type == JSON_NULL) &&
           (json_get(m, "result") != NULL) != (json_get(m, "error") != NULL);
}

static bool is_cancel(const json *m)
{
    const char *method = json_string_value(json_get(m, "method"));
    return method && strcmp(method, "notifications/cancelled") == 0;
}

static bool same_id(const json *a, const json *b)
{
    if (!a || !b || a->type != b->type)
        return false;
    if (a->type == JSON_STRING)
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    return a->type == JSON_NUMBER && a->u.num.value == b->u.num.value;
}

/* Whether the cancellation m names a request the session is answering now: one that ended
 * already (or was never sent) is ignored, as the protocol allows, rather than stopping
 * whichever request runs at the time. */
static bool cancel_names_running(mcp_sess *s, const json *m)
{
    const json *rid = json_get(json_get(m, "params"), "requestId");
    bool found = false;
    pthread_mutex_lock(&mcp_mu);
    for (size_t i = 0; s->running_ids && i < s->running_ids->u.arr.n && !found; i++)
        found = same_id(s->running_ids->u.arr.items[i], rid);
    pthread_mutex_unlock(&mcp_mu);
    return found;
}

static bool is_initialize(const json *m)
{
    const char *method = json_string_value(json_get(m, "method"));
    return method && strcmp(method, "initialize") == 0;
}

/* Copies of the named queries the account may run somewhere (no environments listed, or one
 * it has a grant on). */
static json *visible_queries(proxy *p, const char *user)
{
    json *out = json_new_array();
    acct_ref *ref = proxy_acct_get(p);
    const account *a = acct_find(ref->snap, user);
    for (int i = 0; a && i < ref->snap->n_queries; i++) {
        const json *def = ref->snap->queries[i].def;
        const json *envs = json_get(def, "environments");
        bool ok = !envs || envs->type != JSON_ARRAY || envs->u.arr.n == 0;
        for (size_t k = 0; !ok && k < envs->u.arr.n; k++)
            ok = acct_grant_for(a, json_string_value(envs->u.arr.items[k])) != GRANT_NONE;
        if (ok)
            json_array_add(out, json_clone(def));
    }
    proxy_acct_put(ref);
    return out;
}

void http_mcp_accounts_reloaded(const acct_snapshot *snap)
{
    mcp_sess *gone[MCP_MAX_SESSIONS];
    int n = 0;
    pthread_mutex_lock(&mcp_mu);
    for (mcp_sess *s = mcp_sessions, *next; s; s = next) {
        next = s->next;
        if (!acct_find(snap, s->user) && n < MCP_MAX_SESSIONS) {
            sess_end_locked(s);
            gone[n++] = s;
        }
    }
    pthread_mutex_unlock(&mcp_mu);
    for (int i = 0; i < n; i++)
        sess_put(gone[i]); /* a running request keeps its own reference */
}

void http_mcp_shutdown(void)
{
    mcp_sess *all[MCP_MAX_SESSIONS];
    int n = 0;
    pthread_mutex_lock(&mcp_mu);
    while (mcp_sessions && n < MCP_MAX_SESSIONS) {
        all[n++] = mcp_sessions;
        sess_end_locked(mcp_sessions);
    }
    pthread_mutex_unlock(&mcp_mu);
    for (int i = 0; i < n; i++)
        sess_put(all[i]); /* a running request keeps its own reference */
}

/* ---- the route -------------------------------------------------------------------------------- */

void http_mcp_handle(proxy *p, struct evhttp_request *req, const char *user, const char *addr,
                     const char *host)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    sess_sweep();
    const char *sid = evhttp_find_header(h, "Mcp-Session-Id");
    if (m == EVHTTP_REQ_DELETE) {
        mcp_sess *s = sid ? sess_get(sid, user) : NULL;
        if (!s) {
            reply_rpc_error(req, 404, "Not Found", -32001, "unknown MCP session");
            return;
        }
        pthread_mutex_lock(&mcp_mu);
        if (!s->ended)
            sess_end_locked(s);
        pthread_mutex_unlock(&mcp_mu);
        sess_put(s); /* the registry's */
        sess_put(s); /* ours */
        reply(req, 200, "OK", NULL, 0);
        return;
    }
    if (m != EVHTTP_REQ_POST) {
        /* No server-initiated stream is offered (GET), as the transport allows. */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST, DELETE");
        reply_rpc_error(req, 405, "Method Not Allowed", -32000,
                        "POST JSON-RPC messages; DELETE ends a session");
        return;
    }
    const char *pv = evhttp_find_header(h, "MCP-Protocol-Version");
    if (pv && strcmp(pv, "2025-06-18") && strcmp(pv, "2025-03-26") && strcmp(pv, "2024-11-05")) {
        reply_rpc_error(req, 400, "Bad Request", -32600, "unsupported MCP-Protocol-Version");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char err[200];
    json *msg = len > 1024 * 1024
                    ? NULL
                    : json_parse((const char *)evbuffer_pullup(in, -1), len, JSON_MAX_DEPTH,
                                 err, sizeof(err));
    if (!msg) {
        reply_rpc_error(req, 400, "Bad Request", -32700,
                        len > 1024 * 1024 ? "Parse error: message too large" : "Parse error");
        return;
    }
    bool any_request = false, init = false, all_accepted = true;
    size_t n = msg->type == JSON_ARRAY ? msg->u.arr.n : 1;
    for (size_t i = 0; i < n; i++) {
        const json *x = msg->type == JSON_ARRAY ? msg->u.arr.items[i] : msg;
        any_request |= is_request(x);
        init |= is_initialize(x);
        all_accepted &= is_notification_or_response(x);
    }
    if (n == 0 || (!any_request && !all_accepted)) {
        /* Not a message at all (or an empty batch): the transport answers such input with
         * an HTTP error, not 202, so that the client learns it was not taken. */
        json_free(msg);
        reply_rpc_error(req, 400, "Bad Request", -32600,
                        n == 0 ? "Invalid Request: an empty batch"
                               : "Invalid Request: neither a request, a notification nor a "
                                 "response");
        return;
    }
    if (any_request && !http_user_may_start(user)) {
        json_free(msg);
        reply_rpc_error(req, 429, "Too Many Requests", -32000,
                        "this account already has its share of requests running; try again "
                        "when one ends");
        return;
    }
    mcp_sess *s = NULL;
    if (init) {
        if (msg->type == JSON_ARRAY) {
            json_free(msg);
            reply_rpc_error(req, 400, "Bad Request", -32600,
                            "initialize must be sent alone, not in a batch");
            return;
        }
        /* Abandoned sessions must not lock anyone out: an account past its share ends its
         * own least recently used idle session, and a full table the least recently used
         * idle one of anyone (its client gets 404 and initializes again). */
        pthread_mutex_lock(&mcp_mu);
        int mine = 0;
        mcp_sess *my_lru = NULL, *lru = NULL;
        for (mcp_sess *x = mcp_sessions; x; x = x->next) {
            bool same = strcmp(x->user, user) == 0;
            mine += same;
            if (x->refs != 1)
                continue; /* a request runs in it */
            if (!lru || x->last_used <= lru->last_used)
                lru = x;
            if (same && (!my_lru || x->last_used <= my_lru->last_used))
                my_lru = x;
        }
        mcp_sess *victim = mine >= MCP_MAX_SESSIONS_PER_USER ? my_lru
                           : mcp_n_sessions >= MCP_MAX_SESSIONS ? lru
                                                                 : NULL;
        bool full = (mine >= MCP_MAX_SESSIONS_PER_USER || mcp_n_sessions >= MCP_MAX_SESSIONS) &&
                    !victim;
        char victim_user[ROUTE_NAME_MAX + 1] = "";
        if (victim) {
            snprintf(victim_user, sizeof(victim_user), "%s", victim->user);
            sess_end_locked(victim);
        }
        pthread_mutex_unlock(&mcp_mu);
        if (victim) {
            log_info("http %s: MCP session of user '%s' idle the longest ended to make room",
                     addr, victim_user);
            sess_put(victim);
        }
        if (full) {
            json_free(msg);
            reply_rpc_error(req, 503, "Service Unavailable", -32000, "too many MCP sessions");
            return;
        }
        s = sess_new(p, user);
        pthread_mutex_lock(&mcp_mu);
        s->next = mcp_sessions;
        mcp_sessions = s;
        mcp_n_sessions++;
        s->refs++; /* the job's */
        pthread_mutex_unlock(&mcp_mu);
        log_info("http %s: MCP session for user '%s'", addr, user);
    } else {
        if (!sid) {
            json_free(msg);
            reply_rpc_error(req, 400, "Bad Request", -32600,
                            "Mcp-Session-Id is required (send initialize first)");
            return;
        }
        s = sess_get(sid, user);
        if (!s) {
            json_free(msg);
            reply_rpc_error(req, 404, "Not Found", -32001, "unknown or ended MCP session");
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const json *x = msg->type == JSON_ARRAY ? msg->u.arr.items[i] : msg;
        if (is_cancel(x) && cancel_names_running(s, x))
            cancel_running(p, s, addr, host);
    }
    if (!any_request) {
        /* Notifications and responses only: accepted, nothing to answer. */
        json_free(msg);
        sess_put(s);
        reply(req, 202, "Accepted", NULL, 0);
        return;
    }
    pthread_mutex_lock(&mcp_mu);
    bool busy = mcp_running >= MCP_MAX_RUNNING;
    if (!busy)
        mcp_running++;
    pthread_mutex_unlock(&mcp_mu);
    if (busy) {
        json_free(msg);
        sess_put(s);
        reply_rpc_error(req, 503, "Service Unavailable", -32000,
                        "too many MCP requests at once; try again");
        return;
    }
    mcp_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->p = p;
    j->req = req;
    j->evcon = evhttp_request_get_connection(req);
    j->sess = s;
    j->msg = msg;
    j->initialize = init;
    j->named = visible_queries(p, user);
    j->done_ev = event_new(p->base, -1, 0, job_done, j);
    http_conn_busy(req, user, job_conn_closed, j);
    snprintf(j->addr, sizeof(j->addr), "%s", addr);
    snprintf(j->host, sizeof(j->host), "%s", host);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(j->evcon);
    evutil_socket_t gfd = bev ? bufferevent_getfd(bev) : -1;
    if (gfd >= 0) {
        j->gone_ev = event_new(p->base, gfd, http_gone_events(p->base), job_gone_cb, j);
        if (j->gone_ev)
            event_add(j->gone_ev, NULL);
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, job_thread, j) != 0) {
        pthread_attr_destroy(&attr);
        reply_rpc_error(req, 503, "Service Unavailable", -32000, "cannot start a thread");
        pthread_mutex_lock(&mcp_mu);
        mcp_running--;
        pthread_mutex_unlock(&mcp_mu);
        job_free(j);
        return;
    }
    pthread_attr_destroy(&attr);
}
