/* http/api.c: the /api/v1 routes: sessions and tokens, environments, schemas, ad-hoc SQL with
 * bound parameters, fan-out, compare, and named queries. Every statement runs in an internal
 * session (http/sql.c), so the MySQL port's grants, policy, limits and audit apply. */
#include "http_api.h"
#include "acct_history.h"
#include "acct_thread.h"
#include "audit.h"
#include "http_sql.h"
#include "log.h"
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the request's HTTP version */
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#define API_MAX_BODY (1024 * 1024)           /* request bodies */
#define API_MAX_ANSWER (32u * 1024 * 1024)    /* rows kept for a fan-out, in JSON bytes, all runs */
/* A single result is kept whole up to API_STREAM_AFTER bytes of rows (so a short answer has
 * its proper status and a Content-Length); past that it is streamed (chunked) in pieces of
 * API_STREAM_CHUNK, and reading from its session pauses while more than API_STREAM_HIGH bytes
 * wait to be written to the HTTP client. */
#define API_STREAM_AFTER (256u * 1024)
#define API_STREAM_CHUNK (64u * 1024)
#define API_STREAM_HIGH (1024u * 1024)
#define API_SESSION_TTL (8 * 3600)            /* seconds */
#define API_MAX_SESSIONS 4096
#define API_MAX_SESSIONS_PER_USER 64
#define API_MAX_QUERIES_PER_USER 200 /* named queries an account may own */
#define API_MAX_FANOUT 16
#define API_MAX_PARAMS 256
#define API_MAX_WARNINGS 20
#define COOKIE_NAME "envproxy_session"

/* ---- login sessions (main loop only) ---------------------------------------------------------- */

typedef struct {
    bool used;
    char hash[65]; /* of the token */
    char csrf[65];
    char user[ROUTE_NAME_MAX + 1];
    long long expires;      /* wall clock, as the client is told */
    long long mono_expires; /* the same on the monotonic clock, which decides (a clock set
                               back must not lengthen a session) */
} api_session;

static api_session sessions[API_MAX_SESSIONS];

static void random_token(const char *prefix, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[32];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        abort();
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    for (int i = 0; i < 32 && n + 2 < cap; i++) {
        out[n++] = hex[rnd[i] >> 4];
        out[n++] = hex[rnd[i] & 15];
    }
    out[n] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
}

static long long mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

/* A new login session of user. An account past its share of the table ends its own session
 * that ends first; a full table ends anyone's that ends first. (Without the share, one account
 * logging in again and again would end everyone else's sessions.) */
static api_session *session_new(const char *user, char *token, size_t cap)
{
    long long now = mono_now();
    api_session *slot = NULL, *free_slot = NULL, *mine = NULL;
    int n_mine = 0;
    for (int i = 0; i < API_MAX_SESSIONS; i++) {
        api_session *s = &sessions[i];
        if (!s->used || s->mono_expires <= now) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (strcmp(s->user, user) == 0) {
            n_mine++;
            if (!mine || s->mono_expires < mine->mono_expires)
                mine = s;
        }
        if (!slot || s->mono_expires < slot->mono_expires)
            slot = s; /* full: the one that ends first goes */
    }
    if (n_mine >= API_MAX_SESSIONS_PER_USER)
        slot = mine;
    else if (free_slot)
        slot = free_slot;
    random_token("eps_", token, cap);
    memset(slot, 0, sizeof(*slot));
    slot->used = true;
    hj_token_hash(token, slot->hash);
    random_token("", slot->csrf, sizeof(slot->csrf));
    snprintf(slot->user, sizeof(slot->user), "%s", user);
    slot->expires = (long long)time(NULL) + API_SESSION_TTL;
    slot->mono_expires = now + API_SESSION_TTL;
    return slot;
}

static api_session *session_find(const char *token)
{
    char hash[65];
    hj_token_hash(token, hash);
    long long now = mono_now();
    for (int i = 0; i < API_MAX_SESSIONS; i++) {
        api_session *s = &sessions[i];
        if (s->used && CRYPTO_memcmp(s->hash, hash, 64) == 0)
            return s->mono_expires > now ? s : NULL;
    }
    return NULL;
}

void http_accounts_follow(proxy *p)
{
    static int seen_gen = -1; /* the store's generation the sessions were last checked at */
    int gen = atomic_load(&p->acct_gen);
    if (gen == seen_gen)
        return;
    seen_gen = gen;
    acct_ref *ref = proxy_acct_get(p);
    for (int i = 0; i < API_MAX_SESSIONS; i++) {
        api_session *s = &sessions[i];
        if (s->used && !acct_find(ref->snap, s->user))
            memset(s, 0, sizeof(*s));
    }
    http_mcp_accounts_reloaded(ref->snap);
    proxy_acct_put(ref);
}

/* ---- requests ------------------------------------------------------------------------------- */

typedef enum { K_QUERY, K_ENVS, K_DATABASES, K_SCHEMA } run_kind;

typedef struct hreq hreq;

/* One statement (or schema read) in one environment. */
typedef struct {
    hreq *r;
    hsql *s;
    char env[ROUTE_NAME_MAX + 1];
    bool finished;
    bool failed; /* out holds {"code",...} of the error */
    int step;
    json_buf rows, warnings, out;
    long long skipped, kept;
    bool truncated, more, rows_started;
    unsigned long long affected; /* of the statement, kept past SHOW WARNINGS */
    int n_warnings;
    json *schema; /* K_SCHEMA: the tables being built */
    uint64_t started;
    double ms;
} run;

struct hreq {
    proxy *p;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    char user[ROUTE_NAME_MAX + 1];
    char addr[64], host[48];
    run_kind kind;
    bool fanout, compare;
    char db[ROUTE_NAME_MAX + 1];
    char *sql;
    size_t sql_len;
    hsql_param params[API_MAX_PARAMS];
    char *param_text[API_MAX_PARAMS];
    int n_params;
    bool use_prepare;
    long long skip, limit; /* limit < 0: none */
    long long page;        /* named-query runs: > 0 */
    run runs[API_MAX_FANOUT];
    int n_runs, pending;
    /* The environment the answer names when the SQL's own routing comment (env=, compare=)
     * sends the statement elsewhere than the request's env: "dev", "dev,prod", "*". */
    char routed[ROUTE_MAX_ENVS * (ROUTE_NAME_MAX + 1) + 2];
    bool streaming; /* the answer's head went out (chunked); rows follow as they come */
    bool paused;    /* reading from the session waits for the HTTP client to drain */
    struct event *gone_ev; /* watches the HTTP connection for the client's going away */
};

static void set_json_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

static proxy *api_proxy; /* for the counters (one proxy per process) */

void http_api_count_status(int status)
{
    if (api_proxy && status >= 100 && status < 600)
        atomic_fetch_add(&api_proxy->http_api_status[status / 100], 1);
}

static void reply_text(struct evhttp_request *req, int status, const char *text, size_t len)
{
    http_api_count_status(status);
    http_conn_done(req);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, len);
    evbuffer_add(b, "\n", 1);
    set_json_headers(req);
    evhttp_send_reply(req, status, reason(status), b);
    evbuffer_free(b);
}

/* {"error":{"code","sqlstate","message","env"}} */
static void write_error(json_buf *b, unsigned code, const char *state, const char *msg,
                        const char *env)
{
    json_buf_printf(b, "{\"error\":{\"code\":%u,\"sqlstate\":", code);
    json_write_string(b, state, strlen(state));
    json_buf_puts(b, ",\"message\":");
    char named[700];
    if (code == 2013 && env && *env && !strstr(msg, "environment '")) {
        /* A lost session is the environment's: the message says which, as the MySQL port's
         * errors do. */
        snprintf(named, sizeof(named), "%s (environment '%s')", msg, env);
        msg = named;
    }
    json_write_string(b, msg, strlen(msg));
    json_buf_puts(b, ",\"env\":");
    if (env && *env)
        json_write_string(b, env, strlen(env));
    else
        json_buf_puts(b, "null");
    json_buf_puts(b, "}}");
}

static void reply_error(struct evhttp_request *req, int status, unsigned code, const char *state,
                        const char *env, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void reply_error(struct evhttp_request *req, int status, unsigned code, const char *state,
                        const char *env, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_buf b;
    json_buf_init(&b);
    write_error(&b, code, state, msg, env);
    reply_text(req, status, b.data, b.len);
    json_buf_free(&b);
}

/* The HTTP status for a MySQL error code. */
static int status_for(unsigned code)
{
    switch (code) {
    case 1045: return 401;
    case 1044: /* no grant: the environment does not exist for this account */
    case 1049: /* unknown database */
    case 1146: /* unknown table */
        return 404;
    case 1290: case 1142: case 1143: case 1227: case 1370: case 1792: return 403;
    case 3024: case 1969: case 1317: return 504;
    case 2003: case 2006: case 2013: case 1040: case 1053: return 503;
    case 1129: return 429;
    case 1153: return 502;
    default: return 400;
    }
}

static void client_addr(struct evhttp_request *req, char *addr, size_t acap, char *host,
                        size_t hcap)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const char *h = "?";
    ev_uint16_t port = 0;
    if (evcon)
        evhttp_connection_get_peer(evcon, (char **)&h, &port);
    snprintf(host, hcap, "%s", h ? h : "?");
    snprintf(addr, acap, "%s:%u", h ? h : "?", port);
}

static void audit_login_failed(proxy *p, const char *user, const char *addr)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    audit_record r = {
        .ts_ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000,
        .user = user,
        .client = addr,
        .verdict = "refused",
        .rows = -1,
        .ms = -1,
        .error = "1045: Access denied",
        .event = "login_failed",
        .via = "http",
    };
    audit_log(p->audit, &r);
}

/* ---- authentication -------------------------------------------------------------------------- */

static const char *cookie_value(struct evhttp_request *req, char *out, size_t cap)
{
    const char *c = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
    size_t nl = strlen(COOKIE_NAME);
    for (const char *p = c; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nl + 1 && strncmp(p, COOKIE_NAME "=", nl + 1) == 0 && len - nl - 1 < cap) {
            memcpy(out, p + nl + 1, len - nl - 1);
            out[len - nl - 1] = '\0';
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Whether an Origin header, when there is one, names this server (the Host header). */
static bool origin_ok(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *origin = evhttp_find_header(h, "Origin");
    if (!origin)
        return true;
    const char *hostname = evhttp_find_header(h, "Host");
    if (!hostname)
        return false;
    const char *o = strstr(origin, "://");
    return o && strcmp(o + 3, hostname) == 0;
}

/* ---- the account store's work, on its own thread (acct_thread.h) ------------------------- */

/* SQLite may wait for a lock another program holds or for the disk: the store is read and
 * written on its thread, and the request is answered when that is done, unless its client
 * went away meanwhile. */
typedef enum {
    SJ_RECHECK,       /* look for a token made a moment ago, then take the request again */
    SJ_QUERY_PUT,     /* named query: add (POST) or replace (PUT) */
    SJ_QUERY_DEL,     /* named query: remove */
    SJ_HISTORY_LIST,  /* query history: read */
    SJ_HISTORY_CLEAR, /* query history: remove one entry or all */
    SJ_HISTORY_ADD,   /* query history: add */
} store_op;

typedef struct {
    acct_job job; /* first: the thread sees this */
    proxy *p;
    struct evhttp_request *req; /* NULL once its client went away */
    store_op op;
    char user[ROUTE_NAME_MAX + 1];
    char *name, *text, *env, *db; /* the job's own copies */
    bool replace;
    long long id;
    int limit;
    double ms;
    unsigned code;
    /* the answer: status, and body on success or err (code 1105 or 1305) on failure */
    int status;
    bool failed;
    unsigned err_code;
    const char *sqlstate;
    char err[512];
    json_buf out;
} store_req;

static void api_cb(struct evhttp_request *req, void *arg);
/* The request being taken again after SJ_RECHECK: its token is not looked for twice. */
static struct evhttp_request *rechecked_req;

static void store_fail(store_req *j, int status, unsigned code, const char *state)
{
    j->failed = true;
    j->status = status;
    j->err_code = code;
    j->sqlstate = state;
}

static void store_run(acct_job *job, acct_store *s)
{
    store_req *j = (store_req *)job;
    switch (j->op) {
    case SJ_RECHECK:
        proxy_accounts_poll(j->p);
        break;
    case SJ_QUERY_PUT:
        if (acct_query_put(s, j->name, j->text, j->replace, j->err, sizeof(j->err)) < 0) {
            store_fail(j, j->replace ? 404 : 409, 1305, "42000");
            break;
        }
        job->changed = true;
        j->status = j->replace ? 200 : 201;
        json_buf_puts(&j->out, j->text);
        break;
    case SJ_QUERY_DEL:
        if (acct_query_del(s, j->name, j->err, sizeof(j->err)) < 0) {
            store_fail(j, 404, 1305, "42000");
            break;
        }
        job->changed = true;
        j->status = 200;
        json_buf_puts(&j->out, "{\"ok\":true}");
        break;
    case SJ_HISTORY_LIST:
        if (acct_history_list(s, j->user, j->limit, &j->out, j->err, sizeof(j->err)) < 0)
            store_fail(j, 503, 1105, "HY000");
        else
            j->status = 200;
        break;
    case SJ_HISTORY_CLEAR:
        if (acct_history_clear(s, j->user, j->id, j->err, sizeof(j->err)) < 0) {
            store_fail(j, 503, 1105, "HY000");
            break;
        }
        j->status = 200;
        json_buf_puts(&j->out, "{\"ok\":true}");
        break;
    case SJ_HISTORY_ADD: {
        long long id = acct_history_add(s, j->user, j->env, j->db, j->text, j->ms, j->code,
                                        j->err, sizeof(j->err));
        if (id < 0) {
            store_fail(j, 503, 1105, "HY000");
            break;
        }
        j->status = 201;
        json_buf_printf(&j->out, "{\"id\":%lld}", id);
        break;
    }
    }
}

static void store_req_free(store_req *j)
{
    free(j->name);
    free(j->text);
    free(j->env);
    free(j->db);
    json_buf_free(&j->out);
    free(j);
}

static void store_done(acct_job *job, bool deliver)
{
    store_req *j = (store_req *)job;
    struct evhttp_request *req = j->req;
    if (req)
        http_conn_done(req);
    if (req && deliver) {
        if (j->op == SJ_RECHECK) {
            rechecked_req = req;
            api_cb(req, j->p);
            rechecked_req = NULL;
        } else if (j->failed) {
            reply_error(req, j->status, j->err_code, j->sqlstate, NULL, "%s", j->err);
        } else {
            reply_text(req, j->status, j->out.data ? j->out.data : "", j->out.len);
        }
    }
    store_req_free(j);
}

static void store_req_gone(void *arg)
{
    ((store_req *)arg)->req = NULL;
}

static store_req *store_req_new(proxy *p, store_op op, const char *user)
{
    store_req *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->job.run = store_run;
    j->job.done = store_done;
    j->p = p;
    j->op = op;
    snprintf(j->user, sizeof(j->user), "%s", user ? user : "");
    json_buf_init(&j->out);
    return j;
}

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* The request is answered by j's done, on the main loop, once the store's thread ran it. */
static void store_submit(store_req *j, struct evhttp_request *req)
{
    j->req = req;
    http_conn_busy(req, j->user, store_req_gone, j);
    acct_thread_submit(j->p, &j->job);
}

/* Finds the account of the request (Bearer token or session cookie) into r->user; false after
 * answering 401/403, or when the request is taken again later (a token not known yet: the
 * store is looked at on its thread first). */
static bool authenticate(proxy *p, struct evhttp_request *req, char *user, size_t cap)
{
    http_accounts_follow(p);
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(h, "Authorization");
    char cookie[128];
    const char *who = NULL;
    if (auth) {
        if (strncasecmp(auth, "Bearer ", 7) != 0) {
            reply_error(req, 401, 1045, "28000", NULL, "use Authorization: Bearer TOKEN");
            return false;
        }
        const char *tok = auth + 7;
        if (strncmp(tok, "eps_", 4) == 0) {
            api_session *s = session_find(tok);
            who = s ? s->user : NULL;
        } else if (strncmp(tok, "ept_", 4) == 0) {
            char hash[65];
            hj_token_hash(tok, hash);
            acct_ref *ref = proxy_acct_get(p);
            const acct_token *t = acct_token_find(ref->snap, hash, (long long)time(NULL));
            if (t) {
                snprintf(user, cap, "%s", t->account);
                who = user;
            }
            proxy_acct_put(ref);
            if (!who && req != rechecked_req) {
                /* A token made a moment ago by the CLI: the store is looked at again (on
                 * its thread), then the request is taken again from the start. */
                store_submit(store_req_new(p, SJ_RECHECK, NULL), req);
                return false;
            }
        }
    } else if (cookie_value(req, cookie, sizeof(cookie))) {
        api_session *s = session_find(cookie);
        enum evhttp_cmd_type m = evhttp_request_get_command(req);
        if (s && m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
            /* A browser session changes nothing without the CSRF token it was given, and
             * never from another origin. */
            const char *csrf = evhttp_find_header(h, "X-CSRF-Token");
            if (!csrf || strlen(csrf) != 64 || CRYPTO_memcmp(csrf, s->csrf, 64) != 0 ||
                !origin_ok(req)) {
                reply_error(req, 403, 1045, "28000", NULL,
                            "a cookie session needs the X-CSRF-Token header from the login");
                return false;
            }
        }
        who = s ? s->user : NULL;
    }
    if (!who) {
        reply_error(req, 401, 1045, "28000", NULL,
                    auth ? "the token is not valid (unknown, revoked or expired)"
                         : "authentication required: Authorization: Bearer TOKEN");
        return false;
    }
    if (who != user)
        snprintf(user, cap, "%s", who);
    acct_ref *ref = proxy_acct_get(p);
    bool exists = acct_find(ref->snap, user) != NULL;
    proxy_acct_put(ref);
    if (!exists) {
        reply_error(req, 401, 1045, "28000", NULL, "the account no longer exists");
        return false;
    }
    return true;
}

/* The request body as JSON (NULL after answering 400/413). */
static json *read_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > API_MAX_BODY) {
        reply_error(req, 413, 1153, "08S01", NULL, "the body is larger than %d bytes",
                    API_MAX_BODY);
        return NULL;
    }
    char *text = (char *)evbuffer_pullup(in, -1);
    char err[160];
    json *j = json_parse(text ? text : "", len, 32, err, sizeof(err));
    if (!j) {
        reply_error(req, 400, 1064, "42000", NULL, "the body is not valid JSON: %s", err);
        return NULL;
    }
    if (j->type != JSON_OBJECT) {
        json_free(j);
        reply_error(req, 400, 1064, "42000", NULL, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- POST/DELETE /api/v1/session ---------------------------------------------------------- */

static void do_login(proxy *p, struct evhttp_request *req)
{
    char addr[64], host[48];
    client_addr(req, addr, sizeof(addr), host, sizeof(host));
    json *b = read_body(req);
    if (!b)
        return;
    const char *user = json_string_value(json_get(b, "user"));
    const json *pw = json_get(b, "password");
    if (!user || !pw || pw->type != JSON_STRING) {
        json_free(b);
        reply_error(req, 400, 1064, "42000", NULL, "user and password (strings) are needed");
        return;
    }
    const config *cfg = p->cfg;
    throttle_verdict tv = throttle_blocked(cfg, host, user);
    if (tv != THROTTLE_OK) {
        atomic_fetch_add(&p->logins_refused, 1);
        json_free(b);
        if (tv == THROTTLE_HOST)
            reply_error(req, 429, 1129, "HY000", NULL,
                        "Host '%s' is blocked because of many failed logins; try again later",
                        host);
        else
            reply_error(req, 429, 3955, "HY000", NULL,
                        "Access denied: the account is blocked because of many failed logins; "
                        "try again later");
        return;
    }
    /* SHA256(SHA256(password)) against the stored stage 2, as caching_sha2_password does. */
    uint8_t s1[20], s256[32];
    acct_hash_password(pw->u.str.s, s1, s256);
    acct_ref *ref = proxy_acct_get(p);
    const account *a = acct_valid_name(user) ? acct_find(ref->snap, user) : NULL;
    bool ok = a && strlen(pw->u.str.s) == pw->u.str.len &&
              CRYPTO_memcmp(a->sha256_stage2, s256, 32) == 0;
    proxy_acct_put(ref);
    OPENSSL_cleanse(s1, sizeof(s1));
    OPENSSL_cleanse(s256, sizeof(s256));
    char shown[ROUTE_NAME_MAX + 1];
    snprintf(shown, sizeof(shown), "%s", user);
    for (char *c = shown; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '\'' || (unsigned char)*c >= 0x7f)
            *c = '?';
    json_free(b);
    if (!ok) {
        atomic_fetch_add(&p->logins_refused, 1);
        throttle_failure(cfg, host, shown);
        audit_login_failed(p, shown, addr);
        log_warn("http %s: login failed for user '%s'", addr, shown);
        reply_error(req, 401, 1045, "28000", NULL,
                    "Access denied for user '%s'@'%s' (using password: YES)", shown, host);
        return;
    }
    throttle_success(host, shown);
    char token[80];
    api_session *s = session_new(shown, token, sizeof(token));
    char cookie[256];
    snprintf(cookie, sizeof(cookie), COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             token, API_SESSION_TTL, http_tls_on() ? "; Secure" : "");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
    json_buf o;
    json_buf_init(&o);
    char exp[32];
    time_t t = (time_t)s->expires;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_buf_printf(&o, "{\"token\":\"%s\",\"expires_at\":\"%s\",\"csrf_token\":\"%s\",\"user\":",
                    token, exp, s->csrf);
    json_write_string(&o, shown, strlen(shown));
    json_buf_puts(&o, "}");
    log_info("http %s: user '%s' logged in", addr, shown);
    reply_text(req, 200, o.data, o.len);
    json_buf_free(&o);
}

/* The login session a request names by its Bearer token or, without one, by its cookie;
 * NULL when it names none that is live. */
static api_session *request_session(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *auth = evhttp_find_header(h, "Authorization");
    char cookie[128];
    const char *tok = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7
                      : cookie_value(req, cookie, sizeof(cookie));
    return tok ? session_find(tok) : NULL;
}

static void do_logout(struct evhttp_request *req)
{
    api_session *s = request_session(req);
    if (s)
        memset(s, 0, sizeof(*s));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
                      COOKIE_NAME "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    reply_text(req, 200, "{\"ok\":true}", 11);
}

/* ---- running statements ------------------------------------------------------------------- */

static void hreq_free(hreq *r)
{
    if (r->gone_ev)
        event_free(r->gone_ev);
    for (int i = 0; i < r->n_runs; i++) {
        run *u = &r->runs[i];
        hsql_free(u->s);
        json_buf_free(&u->rows);
        json_buf_free(&u->warnings);
        json_buf_free(&u->out);
        json_free(u->schema);
    }
    for (int i = 0; i < r->n_params; i++)
        free(r->param_text[i]);
    free(r->sql);
    free(r);
}

/* The HTTP client went away: close the sessions (a running statement is killed). */
static void conn_closed(void *arg)
{
    hreq *r = arg;
    log_info("http %s: client went away; its statements are stopped", r->addr);
    hreq_free(r);
}

static void run_step(run *u);

/* Where the run's statement went, as its answer names it. */
static const char *run_env(const run *u)
{
    return u->r->routed[0] ? u->r->routed : u->env;
}

/* The head of a result, before its rows: {"env":..,"columns":[..],"rows":[ */
static void write_head(json_buf *o, const run *u, const hsql_result *res)
{
    json_buf_puts(o, "{\"env\":");
    json_write_string(o, run_env(u), strlen(run_env(u)));
    json_buf_puts(o, ",\"columns\":[");
    for (int i = 0; res->has_rows && i < res->n_cols; i++) {
        char tn[48];
        json_buf_puts(o, i ? ",{\"name\":" : "{\"name\":");
        json_write_string(o, res->cols[i].name, strlen(res->cols[i].name));
        json_buf_puts(o, ",\"type\":");
        const char *t = hj_type_name(&res->cols[i], tn, sizeof(tn));
        json_write_string(o, t, strlen(t));
        json_buf_puts(o, "}");
    }
    json_buf_puts(o, "],\"rows\":[");
}

/* The end of a result, after its rows: ],"row_count",...,"warnings":[..] and next_page; for
 * a streamed answer whose statement failed after its head went out, "error":{...} last (the
 * rows before it are then incomplete, and truncated is true). */
static void write_tail(json_buf *o, const run *u)
{
    const hreq *r = u->r;
    json_buf_printf(o, "],\"row_count\":%lld,\"affected_rows\":%llu,\"truncated\":%s", u->kept,
                    u->affected, u->truncated || u->failed ? "true" : "false");
    json_buf_printf(o, ",\"execution_time_ms\":%.3f,\"warnings\":[", u->ms);
    if (u->warnings.len)
        json_buf_put(o, u->warnings.data, u->warnings.len);
    json_buf_puts(o, "]");
    if (r->page > 0) {
        if (u->more && !u->failed)
            json_buf_printf(o, ",\"next_page\":%lld", r->page + 1);
        else
            json_buf_puts(o, ",\"next_page\":null");
    }
    if (u->failed && u->rows.len > 2) { /* u->rows: {"error":{...}}: its member goes in */
        json_buf_putc(o, ',');
        json_buf_put(o, u->rows.data + 1, u->rows.len - 2);
    }
    json_buf_puts(o, "}");
}

/* The whole answer of a run that did not fail, kept in memory (not streamed). */
static void write_answer(json_buf *o, const run *u)
{
    if (u->r->kind == K_ENVS) {
        json_buf_puts(o, "{\"environments\":[");
        json_buf_put(o, u->rows.data ? u->rows.data : "", u->rows.len);
        json_buf_puts(o, "]}");
    } else if (u->r->kind == K_QUERY) {
        json_buf_put(o, u->out.data ? u->out.data : "", u->out.len); /* the head */
        json_buf_put(o, u->rows.data ? u->rows.data : "", u->rows.len);
        write_tail(o, u);
    } else {
        json_buf_put(o, u->out.data ? u->out.data : "", u->out.len);
    }
}

/* The HTTP client took everything queued: read from the session again. */
static void drained_cb(struct evhttp_connection *evcon, void *arg)
{
    hreq *r = arg;
    if (r->paused) {
        r->paused = false;
        hsql_pause(r->runs[0].s, false);
    }
}

/* Sends the rows gathered so far as a chunk, and pauses the session when the client has too
 * much unread. */
static void stream_flush(run *u)
{
    hreq *r = u->r;
    if (u->rows.len == 0)
        return;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add(b, u->rows.data, u->rows.len);
    json_buf_reset(&u->rows);
    evhttp_send_reply_chunk_with_cb(r->req, b, drained_cb, r);
    evbuffer_free(b);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    if (!r->paused && bev && evbuffer_get_length(bufferevent_get_output(bev)) > API_STREAM_HIGH) {
        r->paused = true;
        hsql_pause(u->s, true);
    }
}

/* The rows passed what an answer keeps in memory: the head goes out now (status 200,
 * chunked), then the rows as they come. */
static void stream_start(run *u, const hsql_result *res)
{
    hreq *r = u->r;
    r->streaming = true;
    set_json_headers(r->req);
    /* HTTP/1.0 has no chunks: the answer's end is the connection's, even for a client that
     * asked to keep it alive. */
    if (r->req->major == 1 && r->req->minor == 0)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Connection", "close");
    http_api_count_status(200);
    evhttp_send_reply_start(r->req, 200, "OK");
    json_buf head;
    json_buf_init(&head);
    write_head(&head, u, res);
    json_buf_put(&head, u->rows.data, u->rows.len);
    json_buf_free(&u->rows);
    u->rows = head;
    stream_flush(u);
}

static void run_failed(run *u, unsigned code, const char *state, const char *msg)
{
    if (u->r->streaming)
        stream_flush(u); /* the rows that came before the error */
    u->failed = true;
    json_buf_reset(&u->out);
    json_buf_printf(&u->out, "%u", code); /* the status is worked out from it later */
    json_buf_reset(&u->rows);
    write_error(&u->rows, code, state, msg, run_env(u));
}

static void hreq_maybe_done(hreq *r);

static void run_end(run *u)
{
    u->finished = true;
    hsql_free(u->s);
    u->s = NULL;
    hreq *r = u->r;
    r->pending--;
    if (r->pending == 0)
        hreq_maybe_done(r);
}

/* Rows of a statement as arrays, or (K_ENVS) as objects keyed by column name. */
static void rows_cb(hsql *s, void *arg, const char *const *vals, const size_t *lens)
{
    run *u = arg;
    hreq *r = u->r;
    if (!vals)
        return;
    if (u->skipped < r->skip) {
        u->skipped++;
        return;
    }
    if (r->limit >= 0 && u->kept >= r->limit) {
        u->more = true;
        u->truncated = true;
        return;
    }
    if (r->fanout && u->rows.len > API_MAX_ANSWER / (unsigned)r->n_runs) {
        u->truncated = true;
        return;
    }
    const hsql_result *res = hsql_get_result(s);
    json_buf *b = &u->rows;
    if (u->kept)
        json_buf_putc(b, ',');
    bool objects = r->kind == K_ENVS;
    json_buf_putc(b, objects ? '{' : '[');
    for (int i = 0; i < res->n_cols; i++) {
        if (i)
            json_buf_putc(b, ',');
        if (objects) {
            json_write_string(b, res->cols[i].name, strlen(res->cols[i].name));
            json_buf_putc(b, ':');
        }
        hj_write_value(b, &res->cols[i], vals[i], lens[i]);
    }
    json_buf_putc(b, objects ? '}' : ']');
    u->kept++;
    if (r->streaming) {
        if (b->len >= API_STREAM_CHUNK)
            stream_flush(u);
    } else if (r->kind == K_QUERY && !r->fanout && b->len >= API_STREAM_AFTER) {
        stream_start(u, res);
    }
}

static void warnings_cb(hsql *s, void *arg, const char *const *vals, const size_t *lens)
{
    run *u = arg;
    const hsql_result *res = hsql_get_result(s);
    if (!vals || res->n_cols < 3 || u->n_warnings >= API_MAX_WARNINGS)
        return;
    json_buf *b = &u->warnings;
    if (u->n_warnings++)
        json_buf_putc(b, ',');
    json_buf_puts(b, "{\"level\":");
    json_write_string(b, vals[0] ? vals[0] : "", vals[0] ? lens[0] : 0);
    json_buf_puts(b, ",\"code\":");
    if (vals[1] && lens[1] > 0 && lens[1] < 8 && strspn(vals[1], "0123456789") >= lens[1])
        json_buf_put(b, vals[1], lens[1]);
    else
        json_buf_puts(b, "0");
    json_buf_puts(b, ",\"message\":");
    json_write_string(b, vals[2] ? vals[2] : "", vals[2] ? lens[2] : 0);
    json_buf_puts(b, "}");
    if (vals[2] && lens[2] > 0 && memmem(vals[2], lens[2], "(max_rows)", 10))
        u->truncated = true;
}

/* ---- schema (four reads of information_schema, all about DATABASE()) ---------------------- */

static const char *const schema_sql[] = {
    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    " ORDER BY TABLE_NAME",
    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY FROM "
    "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, "
    "ORDINAL_POSITION",
    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, "
    "REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
    "DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY TABLE_NAME, CONSTRAINT_NAME, "
    "ORDINAL_POSITION",
};

static json *str_or_null(const char *v, size_t len)
{
    return v ? json_new_string(v, len) : json_new_null();
}

static json *find_named(json *arr, const char *name, size_t len)
{
    for (size_t i = arr->u.arr.n; i-- > 0;) {
        const json *n = json_get(arr->u.arr.items[i], "name");
        if (n && n->u.str.len == len && memcmp(n->u.str.s, name, len) == 0)
            return arr->u.arr.items[i];
    }
    return NULL;
}

static void schema_cb(hsql *s, void *arg, const char *const *vals, const size_t *lens)
{
    run *u = arg;
    if (!vals || !vals[0])
        return;
    json *tables = u->schema;
    if (u->step == 0) {
        json *t = json_new_object();
        json_object_set(t, "name", json_new_string(vals[0], lens[0]));
        bool view = vals[1] && lens[1] == 4 && memcmp(vals[1], "VIEW", 4) == 0;
        json_object_set(t, "type", json_new_cstr(view ? "view" : "table"));
        json_object_set(t, "columns", json_new_array());
        json_object_set(t, "primary_key", json_new_array());
        json_object_set(t, "indexes", json_new_array());
        json_object_set(t, "foreign_keys", json_new_array());
        json_array_add(tables, t);
        return;
    }
    json *t = find_named(tables, vals[0], lens[0]);
    if (!t || !vals[1])
        return;
    if (u->step == 1) {
        json *c = json_new_object();
        json_object_set(c, "name", json_new_string(vals[1], lens[1]));
        json_object_set(c, "type", str_or_null(vals[2], lens[2]));
        json_object_set(c, "nullable",
                        json_new_bool(vals[3] && lens[3] == 3 && memcmp(vals[3], "YES", 3) == 0));
        json_object_set(c, "default", str_or_null(vals[4], lens[4]));
        json_object_set(c, "key", str_or_null(vals[5], lens[5]));
        json_array_add(json_get(t, "columns"), c);
    } else if (u->step == 2) {
        bool primary = lens[1] == 7 && memcmp(vals[1], "PRIMARY", 7) == 0;
        if (primary) {
            if (vals[3])
                json_array_add(json_get(t, "primary_key"), json_new_string(vals[3], lens[3]));
            return;
        }
        json *idx = json_get(t, "indexes");
        json *x = find_named(idx, vals[1], lens[1]);
        if (!x) {
            x = json_new_object();
            json_object_set(x, "name", json_new_string(vals[1], lens[1]));
            json_object_set(x, "unique",
                            json_new_bool(vals[2] && lens[2] == 1 && vals[2][0] == '0'));
            json_object_set(x, "columns", json_new_array());
            json_array_add(idx, x);
        }
        if (vals[3])
            json_array_add(json_get(x, "columns"), json_new_string(vals[3], lens[3]));
    } else {
        json *fks = json_get(t, "foreign_keys");
        json *f = find_named(fks, vals[1], lens[1]);
        if (!f) {
            f = json_new_object();
            json_object_set(f, "name", json_new_string(vals[1], lens[1]));
            json_object_set(f, "columns", json_new_array());
            json_object_set(f, "ref_table", str_or_null(vals[3], lens[3]));
            json_object_set(f, "ref_columns", json_new_array());
            json_array_add(fks, f);
        }
        if (vals[2])
            json_array_add(json_get(f, "columns"), json_new_string(vals[2], lens[2]));
        if (vals[4])
            json_array_add(json_get(f, "ref_columns"), json_new_string(vals[4], lens[4]));
    }
}

static void databases_cb(hsql *s, void *arg, const char *const *vals, const size_t *lens)
{
    run *u = arg;
    char name[ROUTE_NAME_MAX + 1];
    if (!vals || !vals[0] || lens[0] > ROUTE_NAME_MAX)
        return;
    memcpy(name, vals[0], lens[0]); /* values are not NUL-terminated */
    name[lens[0]] = '\0';
    if (virtual_is_schema(name))
        return;
    if (u->kept++)
        json_buf_putc(&u->rows, ',');
    json_write_string(&u->rows, vals[0], lens[0]);
}

static void step_done(hsql *s, void *arg)
{
    run *u = arg;
    const hsql_result *res = hsql_get_result(s);
    if (res->err) {
        run_failed(u, res->code, res->sqlstate, res->message);
        run_end(u);
        return;
    }
    u->step++;
    run_step(u);
}

/* The next thing a run does, after its session is open. */
static void run_step(run *u)
{
    hreq *r = u->r;
    if (r->kind == K_SCHEMA) {
        if (u->step < 4) {
            hsql_query(u->s, schema_sql[u->step], strlen(schema_sql[u->step]), schema_cb,
                       step_done, u);
            return;
        }
        json *o = json_new_object();
        json_object_set(o, "env", json_new_cstr(u->env));
        json_object_set(o, "database", json_new_cstr(r->db));
        json_object_set(o, "tables", u->schema);
        u->schema = NULL;
        char *text = json_serialize(o, NULL);
        json_free(o);
        json_buf_reset(&u->out);
        json_buf_puts(&u->out, text);
        free(text);
        run_end(u);
        return;
    }
    if (r->kind == K_DATABASES) {
        if (u->step == 0) {
            static const char sql[] = "SHOW DATABASES";
            hsql_query(u->s, sql, sizeof(sql) - 1, databases_cb, step_done, u);
            return;
        }
        json_buf_reset(&u->out);
        json_buf_puts(&u->out, "{\"env\":");
        json_write_string(&u->out, u->env, strlen(u->env));
        json_buf_puts(&u->out, ",\"databases\":[");
        json_buf_put(&u->out, u->rows.data ? u->rows.data : "", u->rows.len);
        json_buf_puts(&u->out, "]}");
        run_end(u);
        return;
    }
    /* K_QUERY, K_ENVS: the statement, then SHOW WARNINGS when there are any. */
}

static void warnings_done(hsql *s, void *arg);

static void statement_done(hsql *s, void *arg)
{
    run *u = arg;
    u->ms = (double)(now_ms() - u->started);
    const hsql_result *res = hsql_get_result(s);
    if (res->err) {
        run_failed(u, res->code, res->sqlstate, res->message);
        run_end(u);
        return;
    }
    u->affected = res->has_rows ? 0 : res->affected;
    if (!u->r->streaming && u->r->kind == K_QUERY)
        write_head(&u->out, u, res); /* SHOW WARNINGS replaces the columns */
    if (res->warnings > 0) {
        static const char sql[] = "SHOW WARNINGS";
        hsql_query(s, sql, sizeof(sql) - 1, warnings_cb, warnings_done, u);
        return;
    }
    run_end(u);
}

static void warnings_done(hsql *s, void *arg)
{
    run_end(arg);
}

static void opened(hsql *s, void *arg)
{
    run *u = arg;
    hreq *r = u->r;
    const hsql_result *res = hsql_get_result(s);
    if (res->err) {
        run_failed(u, res->code, res->sqlstate, res->message);
        run_end(u);
        return;
    }
    u->started = now_ms();
    if (r->kind == K_SCHEMA || r->kind == K_DATABASES) {
        run_step(u);
        return;
    }
    if (r->use_prepare)
        hsql_execute(s, r->sql, r->sql_len, r->params, r->n_params, rows_cb, statement_done, u);
    else
        hsql_query(s, r->sql, r->sql_len, rows_cb, statement_done, u);
}

/* Every run ended: answer. */
static void hreq_maybe_done(hreq *r)
{
    http_conn_done(r->req);
    if (r->gone_ev) {
        event_free(r->gone_ev);
        r->gone_ev = NULL;
    }
    struct evhttp_request *req = r->req;
    if (r->streaming) {
        run *u = &r->runs[0];
        json_buf_reset(&u->out);
        if (!u->failed)
            stream_flush(u);
        write_tail(&u->out, u);
        json_buf_putc(&u->out, '\n');
        struct evbuffer *b = evbuffer_new();
        if (!b)
            abort();
        evbuffer_add(b, u->out.data, u->out.len);
        evhttp_send_reply_chunk(req, b);
        evbuffer_free(b);
        evhttp_send_reply_end(req);
    } else if (!r->fanout) {
        run *u = &r->runs[0];
        if (u->failed) {
            int status = status_for((unsigned)atoi(u->out.data));
            reply_text(req, status, u->rows.data, u->rows.len);
        } else {
            json_buf o;
            json_buf_init(&o);
            write_answer(&o, u);
            reply_text(req, 200, o.data, o.len);
            json_buf_free(&o);
        }
    } else {
        json_buf o;
        json_buf_init(&o);
        json_buf_puts(&o, "{\"results\":{");
        for (int i = 0; i < r->n_runs; i++) {
            run *u = &r->runs[i];
            if (i)
                json_buf_putc(&o, ',');
            json_write_string(&o, u->env, strlen(u->env));
            json_buf_putc(&o, ':');
            if (u->failed)
                json_buf_put(&o, u->rows.data, u->rows.len);
            else
                write_answer(&o, u);
        }
        json_buf_puts(&o, "}}");
        reply_text(req, 200, o.data, o.len);
        json_buf_free(&o);
    }
    hreq_free(r);
}

static hreq *hreq_new(proxy *p, struct evhttp_request *req, const char *user, run_kind kind)
{
    hreq *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->p = p;
    r->req = req;
    r->evcon = evhttp_request_get_connection(req);
    r->kind = kind;
    r->limit = -1;
    snprintf(r->user, sizeof(r->user), "%s", user);
    client_addr(req, r->addr, sizeof(r->addr), r->host, sizeof(r->host));
    return r;
}

static void hreq_add_env(hreq *r, const char *env)
{
    run *u = &r->runs[r->n_runs++];
    u->r = r;
    snprintf(u->env, sizeof(u->env), "%s", env);
    json_buf_init(&u->rows);
    json_buf_init(&u->warnings);
    json_buf_init(&u->out);
    if (r->kind == K_SCHEMA)
        u->schema = json_new_array();
}

/* evhttp reads nothing while a request is being answered, so it would notice a client that
 * went away only when writing the answer. This watches the socket instead (http_gone_events):
 * at the peer's close the connection is dropped, which frees the request (conn_closed) and so
 * stops its statements. Where only readability can be watched, bytes (a pipelined request,
 * evhttp's to read) end the watch; with EV_CLOSED they do not, so a TLS client's close_notify,
 * sent before its FIN, does not hide its going away. */
static void gone_cb(evutil_socket_t fd, short what, void *arg)
{
    hreq *r = arg;
    char ch;
    ssize_t n = (what & EV_CLOSED) ? 0 : recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return; /* nothing after all: keep watching */
    if (n > 0) {
        event_del(r->gone_ev);
        return;
    }
    evhttp_connection_free(r->evcon); /* http/server.c's close callback calls conn_closed: r goes */
}

/* Opens a session per run; the answer comes from hreq_maybe_done. */
static void hreq_start(hreq *r)
{
    if (!http_user_may_start(r->user)) {
        reply_error(r->req, 429, 1203, "42000", NULL,
                    "user '%s' already has %d requests running; try again when one ends",
                    r->user, HTTP_MAX_BUSY_PER_USER);
        hreq_free(r);
        return;
    }
    http_conn_busy(r->req, r->user, conn_closed, r);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        r->gone_ev = event_new(r->p->base, fd, http_gone_events(r->p->base), gone_cb, r);
        if (r->gone_ev)
            event_add(r->gone_ev, NULL);
    }
    r->pending = r->n_runs;
    for (int i = 0; i < r->n_runs; i++) {
        run *u = &r->runs[i];
        internal_login l;
        memset(&l, 0, sizeof(l));
        snprintf(l.user, sizeof(l.user), "%s", r->user);
        snprintf(l.addr, sizeof(l.addr), "%s", r->addr);
        snprintf(l.host, sizeof(l.host), "%s", r->host);
        snprintf(l.via, sizeof(l.via), "http");
        if (u->env[0])
            snprintf(l.login_db, sizeof(l.login_db), "%s@%s", r->db, u->env);
        bool direct = r->kind == K_QUERY || r->kind == K_ENVS;
        u->s = hsql_open(r->p, &l, direct ? NULL : opened, u);
        if (!u->s) {
            run_failed(u, 2003, "HY000", "envproxy: no socket for an internal session");
            u->finished = true;
            r->pending--;
        } else if (direct) {
            /* The statement goes with the login (opened() would send it a round trip later). */
            u->started = now_ms();
            if (r->use_prepare)
                hsql_execute(u->s, r->sql, r->sql_len, r->params, r->n_params, rows_cb,
                             statement_done, u);
            else
                hsql_query(u->s, r->sql, r->sql_len, rows_cb, statement_done, u);
        }
    }
    if (r->pending == 0)
        hreq_maybe_done(r);
}

/* The account's default environment (for requests that name none), or "". */
static void default_env(proxy *p, const char *user, char *out, size_t cap)
{
    acct_ref *ref = proxy_acct_get(p);
    const account *a = acct_find(ref->snap, user);
    const cfg_env *e = route_initial_env(p->cfg, a);
    snprintf(out, cap, "%s", e ? e->name : "");
    proxy_acct_put(ref);
}

/* ---- GET routes ------------------------------------------------------------------------------ */

static void do_environments(proxy *p, struct evhttp_request *req, const char *user)
{
    hreq *r = hreq_new(p, req, user, K_ENVS);
    static const char sql[] = "SELECT * FROM __envs.environments";
    r->sql = strdup(sql);
    r->sql_len = sizeof(sql) - 1;
    hreq_add_env(r, "");
    hreq_start(r);
}

/* Wraps the environments answer: {"environments":[...]} instead of the statement's shape. */
static bool valid_env_or_404(struct evhttp_request *req, const char *env)
{
    if (acct_valid_env_name(env))
        return true;
    reply_error(req, 404, 1044, "42000", NULL, "unknown environment");
    return false;
}

static void do_databases(proxy *p, struct evhttp_request *req, const char *user, const char *env)
{
    if (!valid_env_or_404(req, env))
        return;
    hreq *r = hreq_new(p, req, user, K_DATABASES);
    hreq_add_env(r, env);
    hreq_start(r);
}

static void do_schema(proxy *p, struct evhttp_request *req, const char *user, const char *env,
                      const char *db)
{
    if (!valid_env_or_404(req, env))
        return;
    if (!acct_valid_env_name(db) || virtual_is_schema(db)) {
        reply_error(req, 404, 1049, "42000", env, "Unknown database '%s'", db);
        return;
    }
    hreq *r = hreq_new(p, req, user, K_SCHEMA);
    snprintf(r->db, sizeof(r->db), "%.*s", ROUTE_NAME_MAX, db);
    hreq_add_env(r, env);
    hreq_start(r);
}

/* ---- POST /api/v1/query ---------------------------------------------------------------------- */

/* Binds a JSON value to a '?' (false: not a scalar). */
static bool bind_json(hreq *r, const json *v)
{
    int i = r->n_params;
    hsql_param *pa = &r->params[i];
    switch (v->type) {
    case JSON_NULL: pa->kind = HP_NULL; break;
    case JSON_BOOL: pa->kind = HP_INT; pa->i = v->u.b; break;
    case JSON_NUMBER: {
        const char *t = v->u.num.text;
        if (!strpbrk(t, ".eE") && strlen(t) <= 18) {
            pa->kind = HP_INT;
            pa->i = strtoll(t, NULL, 10);
        } else if (!strpbrk(t, "eE")) {
            pa->kind = HP_DECIMAL; /* exact, as written */
            r->param_text[i] = strdup(t);
            pa->s = r->param_text[i];
            pa->len = strlen(t);
        } else if (isfinite(v->u.num.value)) {
            pa->kind = HP_DOUBLE;
            pa->d = v->u.num.value;
        } else {
            return false; /* 1e999: no double holds it (bound, it would become NULL) */
        }
        break;
    }
    case JSON_STRING:
        pa->kind = HP_STRING;
        r->param_text[i] = malloc(v->u.str.len + 1);
        if (!r->param_text[i])
            abort();
        memcpy(r->param_text[i], v->u.str.s, v->u.str.len + 1);
        pa->s = r->param_text[i];
        pa->len = v->u.str.len;
        break;
    default:
        return false;
    }
    r->n_params++;
    return true;
}

static bool env_list(struct evhttp_request *req, const json *a, const char *field, char out[][ROUTE_NAME_MAX + 1], int *n)
{
    if (!a || a->type != JSON_ARRAY || a->u.arr.n == 0 || a->u.arr.n > API_MAX_FANOUT) {
        reply_error(req, 400, 1064, "42000", NULL, "%s: an array of 1 to %d environment names",
                    field, API_MAX_FANOUT);
        return false;
    }
    *n = 0;
    for (size_t i = 0; i < a->u.arr.n; i++) {
        const char *e = json_string_value(a->u.arr.items[i]);
        if (!e || !acct_valid_env_name(e)) {
            reply_error(req, 400, 1064, "42000", NULL, "%s[%zu]: an environment name", field, i);
            return false;
        }
        for (int j = 0; j < *n; j++)
            if (strcmp(out[j], e) == 0) {
                reply_error(req, 400, 1064, "42000", NULL, "%s: '%s' is named twice", field, e);
                return false;
            }
        snprintf(out[(*n)++], ROUTE_NAME_MAX + 1, "%s", e);
    }
    return true;
}

static void do_query(proxy *p, struct evhttp_request *req, const char *user)
{
    json *b = read_body(req);
    if (!b)
        return;
    static const char *const known[] = {"env", "database", "sql", "params", "max_rows", "envs",
                                        "compare"};
    for (size_t i = 0; i < b->u.obj.n; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok |= strcmp(b->u.obj.items[i].key, known[k]) == 0;
        if (!ok) {
            reply_error(req, 400, 1064, "42000", NULL, "unknown field '%.64s'",
                        b->u.obj.items[i].key);
            json_free(b);
            return;
        }
    }
    const json *sql = json_get(b, "sql"), *env = json_get(b, "env"), *db = json_get(b, "database");
    const json *params = json_get(b, "params"), *maxr = json_get(b, "max_rows");
    const json *envs = json_get(b, "envs"), *cmp = json_get(b, "compare");
    char err[160] = "";
    if (!sql || sql->type != JSON_STRING || sql->u.str.len == 0)
        snprintf(err, sizeof(err), "sql: a non-empty string is needed");
    else if (strlen(sql->u.str.s) != sql->u.str.len)
        snprintf(err, sizeof(err), "sql: a NUL character is not allowed");
    else if (env && (env->type != JSON_STRING || !acct_valid_env_name(env->u.str.s)))
        snprintf(err, sizeof(err), "env: an environment name is needed");
    else if (db && db->type != JSON_NULL &&
             (db->type != JSON_STRING || !acct_valid_env_name(db->u.str.s)))
        snprintf(err, sizeof(err), "database: a database name (A-Z a-z 0-9 _ -) is needed");
    else if (params && (params->type != JSON_ARRAY || params->u.arr.n > API_MAX_PARAMS))
        snprintf(err, sizeof(err), "params: an array of at most %d values", API_MAX_PARAMS);
    else if (maxr && (maxr->type != JSON_NUMBER || strpbrk(maxr->u.num.text, ".eE-") ||
                      maxr->u.num.value < 1 || maxr->u.num.value > 1e9))
        snprintf(err, sizeof(err), "max_rows: a positive integer is needed");
    else if ((envs || cmp) && env)
        snprintf(err, sizeof(err), "env cannot be given with envs or compare");
    else if (envs && cmp)
        snprintf(err, sizeof(err), "envs and compare cannot be given together");
    else if (cmp && params && params->u.arr.n)
        snprintf(err, sizeof(err), "compare takes no params");
    /* A routing comment at the start of the SQL (env=, compare=) decides where it runs, as on
     * the MySQL port; the answer then names that place. With envs or compare every part
     * would go there, each labelled as another environment: refused. */
    route_hint hint;
    char herr[160];
    bool routed = !err[0] &&
                  route_parse_hint(sql->u.str.s, sql->u.str.len, &hint, herr, sizeof(herr)) == 0 &&
                  hint.present && (hint.n_envs > 0 || hint.all_envs || hint.n_compare > 0);
    if (routed && (envs || cmp))
        snprintf(err, sizeof(err), "%s cannot be combined with a routing comment (env=, "
                 "compare=) at the start of sql", envs ? "envs" : "compare");
    if (err[0]) {
        reply_error(req, 400, 1064, "42000", NULL, "%s", err);
        json_free(b);
        return;
    }
    hreq *r = hreq_new(p, req, user, K_QUERY);
    if (routed) {
        int n_named = hint.n_compare > 0 ? hint.n_compare : hint.n_envs;
        size_t at = 0;
        if (hint.all_envs && hint.n_compare == 0)
            at = (size_t)snprintf(r->routed, sizeof(r->routed), "*");
        for (int i = 0; !(hint.all_envs && hint.n_compare == 0) && i < n_named; i++)
            at += (size_t)snprintf(r->routed + at, sizeof(r->routed) - at, "%s%s", i ? "," : "",
                                   hint.n_compare > 0 ? hint.compare[i] : hint.envs[i]);
    }
    if (db && db->type == JSON_STRING)
        snprintf(r->db, sizeof(r->db), "%s", db->u.str.s);
    if (maxr)
        r->limit = (long long)maxr->u.num.value;
    for (size_t i = 0; params && i < params->u.arr.n; i++) {
        if (!bind_json(r, params->u.arr.items[i])) {
            reply_error(req, 400, 1064, "42000", NULL,
                        "params[%zu]: a string, a number (a double's range at most), a boolean "
                        "or null is needed", i);
            hreq_free(r);
            json_free(b);
            return;
        }
    }
    r->use_prepare = params && params->u.arr.n > 0;
    char names[API_MAX_FANOUT][ROUTE_NAME_MAX + 1];
    int n = 0;
    if (cmp) {
        const json *ce = json_get(cmp, "envs"), *key = json_get(cmp, "key");
        const char *k = key ? json_string_value(key) : NULL;
        bool key_ok = !key || (k && k[0] && strlen(k) <= 64 && strspn(k,
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
                       strlen(k));
        if (cmp->type != JSON_OBJECT || !env_list(req, ce, "compare.envs", names, &n)) {
            if (cmp->type != JSON_OBJECT)
                reply_error(req, 400, 1064, "42000", NULL, "compare: an object is needed");
            hreq_free(r);
            json_free(b);
            return;
        }
        if (n != 2 || !key_ok) {
            reply_error(req, 400, 1064, "42000", NULL,
                        n != 2 ? "compare.envs: exactly two environments"
                               : "compare.key: a column name (A-Z a-z 0-9 _)");
            hreq_free(r);
            json_free(b);
            return;
        }
        /* The proxy's own compare hint: names checked above, the statement after it as sent. */
        json_buf t;
        json_buf_init(&t);
        json_buf_printf(&t, "/* compare=%s,%s%s%s */ ", names[0], names[1], k ? " key=" : "",
                        k ? k : "");
        json_buf_put(&t, sql->u.str.s, sql->u.str.len);
        r->sql = json_buf_take(&t, &r->sql_len);
        json_buf_free(&t);
        char first[ROUTE_NAME_MAX + 1];
        snprintf(first, sizeof(first), "%s", names[0]);
        hreq_add_env(r, first);
    } else {
        r->sql = malloc(sql->u.str.len + 1);
        if (!r->sql)
            abort();
        memcpy(r->sql, sql->u.str.s, sql->u.str.len + 1);
        r->sql_len = sql->u.str.len;
        if (envs) {
            if (!env_list(req, envs, "envs", names, &n)) {
                hreq_free(r);
                json_free(b);
                return;
            }
            r->fanout = true;
            for (int i = 0; i < n; i++)
                hreq_add_env(r, names[i]);
        } else {
            char e[ROUTE_NAME_MAX + 1];
            if (env)
                snprintf(e, sizeof(e), "%s", env->u.str.s);
            else
                default_env(p, user, e, sizeof(e));
            if (!e[0]) {
                reply_error(req, 400, 1064, "42000", NULL, "env: no environment given and the "
                            "account has no default one");
                hreq_free(r);
                json_free(b);
                return;
            }
            hreq_add_env(r, e);
        }
    }
    json_free(b);
    hreq_start(r);
}

/* ---- named queries ------------------------------------------------------------------------------ */

/* Whether the account may see (and run somewhere) the query. */
static bool query_visible(const account *a, const json *def)
{
    const json *envs = json_get(def, "environments");
    if (!envs || envs->type != JSON_ARRAY || envs->u.arr.n == 0)
        return true;
    for (size_t i = 0; i < envs->u.arr.n; i++)
        if (acct_grant_for(a, json_string_value(envs->u.arr.items[i])) != GRANT_NONE)
            return true;
    return false;
}

static void do_queries_list(proxy *p, struct evhttp_request *req, const char *user)
{
    acct_ref *ref = proxy_acct_get(p);
    const account *a = acct_find(ref->snap, user);
    json_buf o;
    json_buf_init(&o);
    json_buf_puts(&o, "{\"queries\":[");
    int n = 0;
    for (int i = 0; i < ref->snap->n_queries; i++) {
        if (!query_visible(a, ref->snap->queries[i].def))
            continue;
        if (n++)
            json_buf_putc(&o, ',');
        json_write(&o, ref->snap->queries[i].def);
    }
    json_buf_puts(&o, "]}");
    proxy_acct_put(ref);
    reply_text(req, 200, o.data, o.len);
    json_buf_free(&o);
}

static void do_query_get(proxy *p, struct evhttp_request *req, const char *user, const char *name)
{
    acct_ref *ref = proxy_acct_get(p);
    const acct_query *q = acct_query_find(ref->snap, name);
    const account *a = acct_find(ref->snap, user);
    if (!q || !query_visible(a, q->def)) {
        proxy_acct_put(ref);
        reply_error(req, 404, 1305, "42000", NULL, "named query '%s' does not exist", name);
        return;
    }
    char *text = json_serialize(q->def, NULL);
    proxy_acct_put(ref);
    reply_text(req, 200, text, strlen(text));
    free(text);
}

/* POST (create), PUT (replace, owner only), DELETE (owner only). The store write is a small
 * SQLite transaction on the main loop. */
static void do_query_write(proxy *p, struct evhttp_request *req, const char *user,
                           const char *name, enum evhttp_cmd_type m)
{
    char err[512];
    if (m != EVHTTP_REQ_POST) {
        acct_ref *ref = proxy_acct_get(p);
        const acct_query *q = acct_query_find(ref->snap, name);
        const char *owner = q ? json_string_value(json_get(q->def, "owner")) : NULL;
        bool mine = owner && strcmp(owner, user) == 0;
        /* One the account may not see does not exist for it, as with GET (its owner is
         * not told either). */
        bool exists = q != NULL && (mine || query_visible(acct_find(ref->snap, user), q->def));
        proxy_acct_put(ref);
        if (!exists) {
            reply_error(req, 404, 1305, "42000", NULL, "named query '%s' does not exist", name);
            return;
        }
        if (!mine) {
            reply_error(req, 403, 1044, "42000", NULL,
                        "named query '%s' belongs to '%s': only its owner changes it", name,
                        owner ? owner : "?");
            return;
        }
        if (m == EVHTTP_REQ_DELETE) {
            store_req *j = store_req_new(p, SJ_QUERY_DEL, user);
            j->name = dup_or_null(name);
            store_submit(j, req);
            return;
        }
    }
    json *b = read_body(req);
    if (!b)
        return;
    if (name && !json_get(b, "name"))
        json_object_set(b, "name", json_new_cstr(name));
    const char *bn = json_string_value(json_get(b, "name"));
    if (name && (!bn || strcmp(bn, name) != 0)) {
        json_free(b);
        reply_error(req, 400, 1064, "42000", NULL, "name: the body names another query");
        return;
    }
    acct_ref *ref = proxy_acct_get(p);
    const account *by = acct_find(ref->snap, user);
    /* Every definition is held in memory by every snapshot of the store: an account's
     * share is bounded. */
    int owned = 0;
    for (int i = 0; m == EVHTTP_REQ_POST && i < ref->snap->n_queries; i++) {
        const char *o = json_string_value(json_get(ref->snap->queries[i].def, "owner"));
        owned += o && strcmp(o, user) == 0;
    }
    if (owned >= API_MAX_QUERIES_PER_USER) {
        proxy_acct_put(ref);
        json_free(b);
        reply_error(req, 403, 1226, "42000", NULL,
                    "user '%s' already owns %d named queries (the most an account may own)",
                    user, API_MAX_QUERIES_PER_USER);
        return;
    }
    json *def = by ? hj_query_check(b, user, by, p->cfg, err, sizeof(err)) : NULL;
    if (!by)
        snprintf(err, sizeof(err), "the account no longer exists");
    proxy_acct_put(ref);
    json_free(b);
    if (!def) {
        reply_error(req, 400, 1064, "42000", NULL, "%s", err);
        return;
    }
    store_req *j = store_req_new(p, SJ_QUERY_PUT, user);
    j->text = json_serialize(def, NULL);
    j->name = dup_or_null(json_string_value(json_get(def, "name")));
    j->replace = m == EVHTTP_REQ_PUT;
    json_free(def);
    store_submit(j, req);
}

static void do_query_run(proxy *p, struct evhttp_request *req, const char *user, const char *name)
{
    json *b = read_body(req);
    if (!b)
        return;
    acct_ref *ref = proxy_acct_get(p);
    const acct_query *q = acct_query_find(ref->snap, name);
    const account *a = acct_find(ref->snap, user);
    if (!q || !query_visible(a, q->def)) {
        proxy_acct_put(ref);
        json_free(b);
        reply_error(req, 404, 1305, "42000", NULL, "named query '%s' does not exist", name);
        return;
    }
    hreq *r = hreq_new(p, req, user, K_QUERY);
    char err[300] = "";
    int status = 400;
    unsigned code = 1064;
    const json *def = q->def, *penvs = json_get(def, "environments");
    const json *env = json_get(b, "env"), *vals = json_get(b, "params");
    const json *page = json_get(b, "page"), *psize = json_get(b, "page_size");
    char e[ROUTE_NAME_MAX + 1] = "";
    for (size_t i = 0; i < b->u.obj.n && !err[0]; i++) {
        const char *k = b->u.obj.items[i].key;
        if (strcmp(k, "env") && strcmp(k, "params") && strcmp(k, "page") && strcmp(k, "page_size"))
            snprintf(err, sizeof(err), "unknown field '%.64s'", k);
    }
    if (err[0]) {
    } else if (env && (env->type != JSON_STRING || !acct_valid_env_name(env->u.str.s))) {
        snprintf(err, sizeof(err), "env: an environment name is needed");
    } else if (vals && vals->type != JSON_OBJECT) {
        snprintf(err, sizeof(err), "params: an object of parameter values is needed");
    } else if ((page && (page->type != JSON_NUMBER || strpbrk(page->u.num.text, ".eE-") ||
                         page->u.num.value < 1 || page->u.num.value > 1e7)) ||
               (psize && (psize->type != JSON_NUMBER || strpbrk(psize->u.num.text, ".eE-") ||
                          psize->u.num.value < 1 || psize->u.num.value > 10000))) {
        snprintf(err, sizeof(err), "page (>= 1) and page_size (1 to 10000) are integers");
    }
    if (!err[0]) {
        if (env)
            snprintf(e, sizeof(e), "%s", env->u.str.s);
        else if (penvs && penvs->u.arr.n > 0)
            snprintf(e, sizeof(e), "%s", json_string_value(penvs->u.arr.items[0]));
        else
            default_env(p, user, e, sizeof(e));
        bool allowed = !penvs || penvs->u.arr.n == 0;
        for (size_t i = 0; penvs && i < penvs->u.arr.n && !allowed; i++)
            allowed = strcmp(json_string_value(penvs->u.arr.items[i]), e) == 0;
        if (!allowed) {
            status = 403;
            code = 1044;
            snprintf(err, sizeof(err), "named query '%s' may not run in environment '%s'", name,
                     e);
        }
    }
    /* Parameters: every declared one from the body or its default; nothing undeclared. */
    const json *pdefs = json_get(def, "params");
    for (size_t i = 0; !err[0] && vals && i < vals->u.obj.n; i++) {
        bool found = false;
        for (size_t j = 0; pdefs && j < pdefs->u.arr.n && !found; j++)
            found = strcmp(json_string_value(json_get(pdefs->u.arr.items[j], "name")),
                           vals->u.obj.items[i].key) == 0;
        if (!found)
            snprintf(err, sizeof(err), "parameter '%.64s' is not a parameter of '%s'",
                     vals->u.obj.items[i].key, name);
    }
    const char *pnames[64];
    size_t plens[64];
    char *rewritten = NULL, perr[160];
    const char *sqltext = json_string_value(json_get(def, "sql"));
    int np = err[0] ? 0
             : hj_named_params(sqltext, strlen(sqltext), &rewritten, pnames, plens, 64, perr,
                               sizeof(perr));
    if (np < 0)
        snprintf(err, sizeof(err), "%s", perr);
    for (int i = 0; !err[0] && i < np; i++) {
        const json *pd = NULL;
        for (size_t j = 0; pdefs && j < pdefs->u.arr.n && !pd; j++) {
            const char *pn = json_string_value(json_get(pdefs->u.arr.items[j], "name"));
            if (strlen(pn) == plens[i] && strncmp(pn, pnames[i], plens[i]) == 0)
                pd = pdefs->u.arr.items[j];
        }
        char pn[65];
        snprintf(pn, sizeof(pn), "%.*s", (int)plens[i], pnames[i]);
        const char *type = pd ? json_string_value(json_get(pd, "type")) : NULL;
        const json *v = vals ? json_get(vals, pn) : NULL;
        if (!v || v->type == JSON_NULL) {
            const json *dv = pd ? json_get(pd, "default") : NULL;
            const json *req_ = pd ? json_get(pd, "required") : NULL;
            if (dv && dv->type != JSON_NULL)
                v = dv;
            else if (!v && req_ && req_->type == JSON_BOOL && req_->u.b) {
                snprintf(err, sizeof(err), "parameter '%s' is required", pn);
                break;
            }
        }
        if (!type) {
            snprintf(err, sizeof(err), "parameter '%s' is not declared", pn);
            break;
        }
        hsql_param *pa = &r->params[r->n_params];
        if (!v || v->type == JSON_NULL) {
            pa->kind = HP_NULL;
            r->n_params++;
            continue;
        }
        char canon[96], cerr[128];
        if (!hj_check_param(type, v, canon, sizeof(canon), cerr, sizeof(cerr))) {
            snprintf(err, sizeof(err), "parameter '%s' (%s): %s", pn, type, cerr);
            break;
        }
        if (strcmp(type, "int") == 0 || strcmp(type, "bool") == 0) {
            pa->kind = HP_INT;
            pa->i = strtoll(canon, NULL, 10);
        } else {
            pa->kind = strcmp(type, "decimal") == 0 ? HP_DECIMAL : HP_STRING;
            const char *src = strcmp(type, "string") == 0 ? v->u.str.s : canon;
            size_t len = strcmp(type, "string") == 0 ? v->u.str.len : strlen(canon);
            r->param_text[r->n_params] = malloc(len + 1);
            if (!r->param_text[r->n_params])
                abort();
            memcpy(r->param_text[r->n_params], src, len + 1);
            pa->s = r->param_text[r->n_params];
            pa->len = len;
        }
        r->n_params++;
    }
    const char *qdb = json_string_value(json_get(def, "database"));
    if (qdb)
        snprintf(r->db, sizeof(r->db), "%s", qdb);
    r->page = page ? (long long)page->u.num.value : 1;
    long long size = psize ? (long long)psize->u.num.value : 100;
    r->skip = (r->page - 1) * size;
    r->limit = size;
    proxy_acct_put(ref);
    json_free(b);
    if (err[0]) {
        free(rewritten);
        reply_error(req, status, code, code == 1044 ? "42000" : "42000", e[0] ? e : NULL, "%s",
                    err);
        hreq_free(r);
        return;
    }
    r->sql = rewritten;
    r->sql_len = strlen(rewritten);
    r->use_prepare = true; /* always server-side prepared, with or without parameters */
    hreq_add_env(r, e);
    hreq_start(r);
}

/* ---- GET /api/v1/session, /api/v1/history (the web console) ------------------------------ */

/* Who the session of the request (cookie or Bearer eps_) is: a page that was reloaded learns
 * its user and CSRF token again (the token is kept in the page's memory only). Without a
 * session the answer is {"user":null} with 200, so that a page asking is not an error. A
 * cross-site page cannot read it: no CORS headers, and the cookie is SameSite=Strict. */
static void do_session_get(struct evhttp_request *req)
{
    api_session *s = request_session(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    if (!s) {
        reply_text(req, 200, "{\"user\":null}", 13);
        return;
    }
    json_buf o;
    json_buf_init(&o);
    char exp[32];
    time_t t = (time_t)s->expires;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_buf_printf(&o, "{\"expires_at\":\"%s\",\"csrf_token\":\"%s\",\"user\":", exp, s->csrf);
    json_write_string(&o, s->user, strlen(s->user));
    json_buf_puts(&o, "}");
    reply_text(req, 200, o.data, o.len);
    json_buf_free(&o);
}

/* A history entry's env (list: a fan-out's "dev,prod", at most API_MAX_FANOUT names) or
 * database: names of [A-Za-z0-9_-]. */
static bool history_names_ok(const char *s, bool list)
{
    int n = 0;
    for (const char *p = s;; n++) {
        const char *end = list ? strchr(p, ',') : NULL;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char name[ROUTE_NAME_MAX + 1];
        if (len == 0 || len > ROUTE_NAME_MAX || n == API_MAX_FANOUT)
            return false;
        memcpy(name, p, len);
        name[len] = '\0';
        if (!acct_valid_env_name(name))
            return false;
        if (!end)
            return true;
        p = end + 1;
    }
}

/* GET ?limit=N (1..ACCT_HISTORY_MAX, default 100), POST an entry, DELETE all or one. */
static void do_history(proxy *p, struct evhttp_request *req, const char *user, const char *id_seg)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_GET && !id_seg) {
        int limit = 100;
        const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        struct evkeyvalq args;
        if (q && evhttp_parse_query_str(q, &args) == 0) { /* it initializes args */
            const char *l = evhttp_find_header(&args, "limit");
            char *end = NULL;
            long v = l ? strtol(l, &end, 10) : 100;
            bool bad = l && (*end || v < 1 || v > ACCT_HISTORY_MAX);
            evhttp_clear_headers(&args);
            if (bad) {
                reply_error(req, 400, 1210, "HY000", NULL, "limit: an integer from 1 to %d",
                            ACCT_HISTORY_MAX);
                return;
            }
            limit = (int)v;
        }
        store_req *j = store_req_new(p, SJ_HISTORY_LIST, user);
        j->limit = limit;
        store_submit(j, req);
        return;
    }
    if (m == EVHTTP_REQ_DELETE) {
        long long id = 0;
        if (id_seg) {
            char *end = NULL;
            id = strtoll(id_seg, &end, 10);
            if (*end || id < 1) {
                reply_error(req, 404, 0, "HY000", NULL, "no such history entry");
                return;
            }
        }
        store_req *j = store_req_new(p, SJ_HISTORY_CLEAR, user);
        j->id = id;
        store_submit(j, req);
        return;
    }
    if (m != EVHTTP_REQ_POST || id_seg) {
        reply_error(req, 405, 0, "HY000", NULL, "method not allowed on this route");
        return;
    }
    json *b = read_body(req);
    if (!b)
        return;
    const char *sql = NULL, *env = NULL, *db = NULL;
    double ms = -1;
    unsigned code = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < b->u.obj.n && !bad; i++) {
        const char *k = b->u.obj.items[i].key;
        const json *v = b->u.obj.items[i].val;
        if (strcmp(k, "sql") == 0) {
            sql = json_string_value(v);
            if (!sql || strlen(sql) != v->u.str.len || v->u.str.len == 0 ||
                v->u.str.len > ACCT_HISTORY_SQL_MAX)
                bad = "sql: a string of 1 to 65536 bytes (no NUL)";
        } else if (strcmp(k, "env") == 0 || strcmp(k, "database") == 0) {
            const char *n = v->type == JSON_NULL ? NULL : json_string_value(v);
            if (v->type != JSON_NULL && (!n || !history_names_ok(n, k[0] == 'e')))
                bad = "env: names of [A-Za-z0-9_-] (a comma-separated list of up to 16 for a "
                      "fan-out), database: a name, or null";
            else if (k[0] == 'e')
                env = n;
            else
                db = n;
        } else if (strcmp(k, "execution_time_ms") == 0) {
            if (v->type == JSON_NULL)
                ms = -1;
            else if (v->type != JSON_NUMBER || v->u.num.value < 0 || v->u.num.value > 1e9)
                bad = "execution_time_ms: a number >= 0";
            else
                ms = v->u.num.value;
        } else if (strcmp(k, "error_code") == 0) {
            if (v->type != JSON_NUMBER || v->u.num.value < 0 || v->u.num.value > 65535 ||
                v->u.num.value != (double)(unsigned)v->u.num.value)
                bad = "error_code: an integer from 0 to 65535";
            else
                code = (unsigned)v->u.num.value;
        } else {
            bad = "unknown field (allowed: sql, env, database, execution_time_ms, error_code)";
        }
    }
    if (!bad && !sql)
        bad = "sql is needed";
    if (bad) {
        json_free(b);
        reply_error(req, 400, 1064, "42000", NULL, "%s", bad);
        return;
    }
    store_req *j = store_req_new(p, SJ_HISTORY_ADD, user);
    j->text = dup_or_null(sql);
    j->env = dup_or_null(env);
    j->db = dup_or_null(db);
    j->ms = ms;
    j->code = code;
    json_free(b);
    store_submit(j, req);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static void not_found(struct evhttp_request *req)
{
    reply_error(req, 404, 0, "HY000", NULL, "no such route: see docs/http.md");
}

static void method_not_allowed(struct evhttp_request *req)
{
    reply_error(req, 405, 0, "HY000", NULL, "method not allowed on this route");
}

static void api_cb(struct evhttp_request *req, void *arg)
{
    proxy *p = arg;
    if (!http_framing_ok(req))
        return;
    const char *uri = evhttp_request_get_uri(req);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(uri, 0);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    char seg[8][HJ_SEG_MAX + 1];
    int n = path ? hj_split_path(path, seg, 8) : -1;
    if (u)
        evhttp_uri_free(u);
    if (n == 1 && strcmp(seg[0], "mcp") == 0) {
        /* A browser page of another origin must not reach the tools (DNS rebinding). */
        char user[ROUTE_NAME_MAX + 1], addr[64], host[48];
        if (!origin_ok(req)) {
            reply_error(req, 403, 0, "HY000", NULL, "Origin not allowed");
            return;
        }
        if (atomic_load(&p->draining) || atomic_load(&p->stopping)) {
            reply_error(req, 503, 1053, "08S01", NULL, "envproxy is shutting down");
            return;
        }
        if (!authenticate(p, req, user, sizeof(user)))
            return;
        client_addr(req, addr, sizeof(addr), host, sizeof(host));
        http_mcp_handle(p, req, user, addr, host);
        return;
    }
    if (n < 2 || strcmp(seg[0], "api") != 0 || strcmp(seg[1], "v1") != 0) {
        evhttp_send_error(req, 404, "Not Found: try /health, /metrics or /api/v1");
        return;
    }
    if (atomic_load(&p->draining) || atomic_load(&p->stopping)) {
        reply_error(req, 503, 1053, "08S01", NULL, "envproxy is shutting down");
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (n == 3 && strcmp(seg[2], "session") == 0) {
        if (m == EVHTTP_REQ_POST)
            do_login(p, req);
        else if (m == EVHTTP_REQ_DELETE)
            do_logout(req);
        else if (m == EVHTTP_REQ_GET)
            do_session_get(req);
        else
            method_not_allowed(req);
        return;
    }
    if ((n == 3 || n == 4) && strcmp(seg[2], "history") == 0) {
        char who[ROUTE_NAME_MAX + 1];
        if (authenticate(p, req, who, sizeof(who)))
            do_history(p, req, who, n == 4 ? seg[3] : NULL);
        return;
    }
    char user[ROUTE_NAME_MAX + 1];
    if (n >= 3 && strcmp(seg[2], "environments") == 0) {
        if (m != EVHTTP_REQ_GET) {
            method_not_allowed(req);
            return;
        }
        if (n == 3 && authenticate(p, req, user, sizeof(user)))
            do_environments(p, req, user);
        else if (n == 5 && strcmp(seg[4], "databases") == 0 &&
                 authenticate(p, req, user, sizeof(user)))
            do_databases(p, req, user, seg[3]);
        else if (n == 7 && strcmp(seg[4], "databases") == 0 && strcmp(seg[6], "schema") == 0 &&
                 authenticate(p, req, user, sizeof(user)))
            do_schema(p, req, user, seg[3], seg[5]);
        else if (n != 3 && n != 5 && n != 7)
            not_found(req);
        return;
    }
    if (n == 3 && strcmp(seg[2], "query") == 0) {
        if (m != EVHTTP_REQ_POST)
            method_not_allowed(req);
        else if (authenticate(p, req, user, sizeof(user)))
            do_query(p, req, user);
        return;
    }
    if (n >= 3 && strcmp(seg[2], "queries") == 0) {
        if (n == 3) {
            if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_POST)
                method_not_allowed(req);
            else if (authenticate(p, req, user, sizeof(user))) {
                if (m == EVHTTP_REQ_GET)
                    do_queries_list(p, req, user);
                else
                    do_query_write(p, req, user, NULL, m);
            }
            return;
        }
        if (n == 4) {
            if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_PUT && m != EVHTTP_REQ_DELETE)
                method_not_allowed(req);
            else if (authenticate(p, req, user, sizeof(user))) {
                if (m == EVHTTP_REQ_GET)
                    do_query_get(p, req, user, seg[3]);
                else
                    do_query_write(p, req, user, seg[3], m);
            }
            return;
        }
        if (n == 5 && strcmp(seg[4], "run") == 0) {
            if (m != EVHTTP_REQ_POST)
                method_not_allowed(req);
            else if (authenticate(p, req, user, sizeof(user)))
                do_query_run(p, req, user, seg[3]);
            return;
        }
    }
    not_found(req);
}

void http_api_register(proxy *p, struct evhttp *http)
{
    api_proxy = p;
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_max_body_size(http, API_MAX_BODY);
    evhttp_set_gencb(http, api_cb, p);
}
