/* backend.c: one backend connection, driven without blocking by MariaDB Connector/C's
 * _start/_cont calls from whichever worker loop holds it. */
#include "envproxy.h"
#include "resolve.h"
#include "log.h"

/* Connector/C keeps its TLS session in its I/O layer: ma_pvio.h gives that layer, and the
 * TLS container is three pointers (ma_tls.h: data, pvio, ssl). The relay uses the SSL
 * session directly; backend_connect checks it belongs to the socket before trusting it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <ma_pvio.h>
#pragma GCC diagnostic pop
struct tls_container {
    void *data, *pvio, *ssl;
};
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

static void be_step(backend *b, int ready);
static void be_set_deadline(backend *b);

/* A KILL QUERY under way on a side connection. */
struct be_kill {
    unsigned long thread_id;
    be_kill_fn done; /* NULL once forgotten */
    void *arg;
    bool starting, over; /* over while still in backend_kill_query: it frees */
};

static atomic_ullong next_serial;

backend *backend_new(pool *pl)
{
    backend *b = calloc(1, sizeof(*b));
    if (!b)
        abort();
    b->serial = atomic_fetch_add(&next_serial, 1) + 1;
    b->pool = pl;
    b->fd = -1;
    b->status = ST_AUTOCOMMIT; /* a new session's */
    b->in = evbuffer_new();
    b->out = evbuffer_new();
    if (!b->in || !b->out)
        abort();
    pthread_mutex_lock(&pl->mu);
    b->all_next = pl->all;
    if (pl->all)
        pl->all->all_prev = b;
    pl->all = b;
    pthread_mutex_unlock(&pl->mu);
    return b;
}

void backend_unwatch(backend *b)
{
    if (b->ev_added) {
        event_del(&b->ev);
        b->ev_added = false;
    }
}

/* Moves b to base's loop. A registration parked on the same loop stays; one on another
 * worker's loop is removed from here (libevent waits for a callback running there). */
void backend_attach(backend *b, struct event_base *base)
{
    if (b->ev_added && event_get_base(&b->ev) != base)
        backend_unwatch(b);
    b->base = base;
}

/* Copies Connector/C's error into b->err_*. */
static void be_take_error(backend *b)
{
    b->err_code = mysql_errno(b->mysql);
    const char *st = mysql_sqlstate(b->mysql);
    snprintf(b->err_state, sizeof(b->err_state), "%.5s", st && *st ? st : "HY000");
    snprintf(b->err_msg, sizeof(b->err_msg), "%s", mysql_error(b->mysql));
    if (!b->err_code) {
        b->err_code = 2013;
        snprintf(b->err_msg, sizeof(b->err_msg), "Lost connection to server");
    }
}

static void be_event_cb(evutil_socket_t fd, short what, void *arg)
{
    backend *b = arg;
    int ready = 0;
    b->ev_added = false;
    if (what & EV_READ)
        ready |= MYSQL_WAIT_READ;
    if (what & EV_WRITE)
        ready |= MYSQL_WAIT_WRITE;
    if (what & EV_TIMEOUT)
        ready |= MYSQL_WAIT_TIMEOUT;
    be_step(b, ready);
}

/* Waits for what Connector/C asked for in status. */
static void be_wait(backend *b, int status)
{
    short what = 0;
    struct timeval tv, *tvp = NULL;
    if (b->fd < 0)
        b->fd = mysql_get_socket(b->mysql);
    if (status & MYSQL_WAIT_READ)
        what |= EV_READ;
    if (status & MYSQL_WAIT_WRITE)
        what |= EV_WRITE;
    uint64_t ms = UINT64_MAX;
    if (status & MYSQL_WAIT_TIMEOUT)
        ms = mysql_get_timeout_value_ms(b->mysql);
    if (b->op_deadline_ms) {
        /* The operation's own deadline comes first: when it passes, Connector/C is told
         * the wait timed out and fails the operation. */
        uint64_t now = now_ms();
        uint64_t left = b->op_deadline_ms > now ? b->op_deadline_ms - now : 0;
        if (left < ms)
            ms = left;
    }
    if (ms != UINT64_MAX) {
        tv.tv_sec = (time_t)(ms / 1000);
        tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
        tvp = &tv;
    }
    backend_unwatch(b);
    event_assign(&b->ev, b->base, b->fd, what, be_event_cb, b);
    event_add(&b->ev, tvp);
    b->ev_added = true;
}

/* Copies the environment's host, user, password and database for a connect or change
 * user: Connector/C reads them again in later _cont steps, and a replaced configuration
 * may be freed meanwhile (SIGHUP). */
static void take_login(backend *b, const cfg_env *e)
{
    const char *v[4] = {e->host, e->user, e->password, e->database};
    for (int i = 0; i < 4; i++) {
        if (b->login[i]) {
            OPENSSL_cleanse(b->login[i], strlen(b->login[i]));
            free(b->login[i]);
        }
        b->login[i] = v[i] ? strdup(v[i]) : NULL;
        if (v[i] && !b->login[i])
            abort();
    }
}

/* Whether the server's certificate names host (DNS names of subjectAltName, or the common
 * name without them; an IP address against the IP entries). */
static bool cert_names_host(SSL *ssl, const char *host)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert)
        return false;
    bool ok = resolve_is_literal(host) && strcmp(host, "localhost") != 0
                  ? X509_check_ip_asc(cert, host, 0) == 1
                  : X509_check_host(cert, host, strlen(host), 0, NULL) == 1;
    X509_free(cert);
    return ok;
}

static void be_new_handle(backend *b);

/* Starts (ready < 0) or continues the current operation; on completion calls done. */
static void be_step(backend *b, int ready)
{
    int status = 0;
    bool start = ready < 0;
    switch (b->op) {
    case BOP_CONNECT: {
        const cfg_env *e = b->pool->env;
        if (!start && b->op_phase == 1) {
            /* The host name has no address (resolve.c): fail now, from the loop. */
            b->ret_mysql = NULL;
            break;
        }
        if (start) {
            take_login(b, e);
            /* The address kept by the resolver thread: Connector/C would resolve the name
             * here with getaddrinfo, which blocks the loop for as long as DNS takes. */
            char addr[RESOLVE_ADDR_MAX];
            if (resolve_get(e->host, addr, sizeof(addr), b->err_msg, sizeof(b->err_msg))) {
                b->err_code = 2005; /* CR_UNKNOWN_HOST */
                snprintf(b->err_state, sizeof(b->err_state), "HY000");
                b->op_phase = 1;
                backend_unwatch(b);
                struct timeval now = {0, 0};
                event_assign(&b->ev, b->base, -1, 0, be_event_cb, b);
                event_add(&b->ev, &now); /* done is never called before this returns */
                b->ev_added = true;
                return;
            }
            if (strcmp(addr, b->login[0]) != 0) {
                free(b->login[0]);
                b->login[0] = strdup(addr);
                if (!b->login[0])
                    abort();
            }
        }
        status = start ? mysql_real_connect_start(&b->ret_mysql, b->mysql, b->login[0],
                                                  b->login[1], b->login[2],
                                                  b->no_db ? NULL : b->login[3],
                                                  (unsigned)e->port,
                                                  NULL,
                                                  (b->single_stmt ? 0 : CLIENT_MULTI_STATEMENTS) |
                                                      CLIENT_MULTI_RESULTS |
                                                      CLIENT_PS_MULTI_RESULTS)
                       : mysql_real_connect_cont(&b->ret_mysql, b->mysql, ready);
        break;
    }
    case BOP_SELECT_DB:
        status = start ? mysql_select_db_start(&b->ret_int, b->mysql, b->op_text)
                       : mysql_select_db_cont(&b->ret_int, b->mysql, ready);
        break;
    case BOP_QUERY:
        status = start ? mysql_real_query_start(&b->ret_int, b->mysql, b->op_text,
                                                strlen(b->op_text))
                       : mysql_real_query_cont(&b->ret_int, b->mysql, ready);
        break;
    case BOP_RESET:
        status = start ? mysql_reset_connection_start(&b->ret_int, b->mysql)
                       : mysql_reset_connection_cont(&b->ret_int, b->mysql, ready);
        break;
    case BOP_SET_OPTION:
        status = start ? mysql_set_server_option_start(&b->ret_int, b->mysql,
                                                       b->multi_stmt
                                                           ? MYSQL_OPTION_MULTI_STATEMENTS_ON
                                                           : MYSQL_OPTION_MULTI_STATEMENTS_OFF)
                       : mysql_set_server_option_cont(&b->ret_int, b->mysql, ready);
        break;
    case BOP_CHARSET:
        status = start ? mysql_set_character_set_start(&b->ret_int, b->mysql, b->op_text)
                       : mysql_set_character_set_cont(&b->ret_int, b->mysql, ready);
        break;
    case BOP_CHANGE_USER: {
        if (start)
            take_login(b, b->pool->env);
        status = start ? mysql_change_user_start(&b->ret_bool, b->mysql, b->login[1],
                                                 b->login[2], NULL)
                       : mysql_change_user_cont(&b->ret_bool, b->mysql, ready);
        break;
    }
    case BOP_READ_MODE:
        /* Phase 0: have every session variable change reported in OK packets (an older
         * server that cannot is still usable); 1: read sql_mode; 2: its result. */
        if (b->op_phase == 0) {
            static const char track[] = "SET SESSION session_track_system_variables = '*', "
                                        "session_track_schema = ON";
            status = start ? mysql_real_query_start(&b->ret_int, b->mysql, track,
                                                    sizeof(track) - 1)
                           : mysql_real_query_cont(&b->ret_int, b->mysql, ready);
            if (status == 0) {
                b->op_phase = 1;
                start = true;
            }
        }
        if (b->op_phase == 1) {
            status = start ? mysql_real_query_start(&b->ret_int, b->mysql,
                                                    "SELECT @@SESSION.sql_mode", 25)
                           : mysql_real_query_cont(&b->ret_int, b->mysql, ready);
            if (status == 0 && b->ret_int == 0) {
                b->op_phase = 2;
                start = true;
            }
        }
        if (b->op_phase == 2)
            status = start ? mysql_store_result_start(&b->ret_res, b->mysql)
                           : mysql_store_result_cont(&b->ret_res, b->mysql, ready);
        break;
    case BOP_PING:
        status = start ? mysql_ping_start(&b->ret_int, b->mysql)
                       : mysql_ping_cont(&b->ret_int, b->mysql, ready);
        break;
    case BOP_FETCH:
        /* Phase 0: the statement; 1: its rows, one fetch at a time. */
        if (b->op_phase == 0) {
            status = start ? mysql_real_query_start(&b->ret_int, b->mysql, b->fetch_sql,
                                                    strlen(b->fetch_sql))
                           : mysql_real_query_cont(&b->ret_int, b->mysql, ready);
            if (status || b->ret_int)
                break;
            b->ret_res = mysql_use_result(b->mysql);
            if (!b->ret_res)
                break; /* no result set: done */
            if (!b->fetch_row(b, NULL, NULL, b->done_arg)) {
                b->fetch_more = true;
                break;
            }
            b->op_phase = 1;
            start = true;
        }
        for (;;) {
            status = start ? mysql_fetch_row_start(&b->ret_row, b->ret_res)
                           : mysql_fetch_row_cont(&b->ret_row, b->ret_res, ready);
            if (status || !b->ret_row)
                break;
            start = true;
            if (!b->fetch_row(b, b->ret_row, mysql_fetch_lengths(b->ret_res), b->done_arg)) {
                b->fetch_more = true;
                break;
            }
        }
        break;
    case BOP_NONE:
        return;
    }
    if (status) {
        be_wait(b, status);
        return;
    }

    int rc = 0;
    switch (b->op) {
    case BOP_CONNECT:
        rc = b->ret_mysql ? 0 : -1;
        if (rc == 0) {
            b->fd = mysql_get_socket(b->mysql);
            b->thread_id = mysql_thread_id(b->mysql);
            /* Connector/C turns keepalive on with the system's timing (2 hours): a server
             * whose host vanished would hold its pooled connections as long. */
            int idle = 60, interval = 10, count = 6;
            setsockopt(b->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
            setsockopt(b->fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
            setsockopt(b->fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
            b->multi_stmt = b->single_stmt ? 0 : 1; /* CLIENT_MULTI_STATEMENTS at connect */
            MARIADB_PVIO *pvio = b->mysql->net.pvio;
            b->ssl = pvio && pvio->ctls ? (SSL *)((struct tls_container *)pvio->ctls)->ssl
                                        : NULL;
            if (b->ssl && SSL_get_fd(b->ssl) != b->fd)
                b->ssl = NULL; /* not the layout we know: refuse below */
            if (b->ssl) {
                /* The relay reads until OpenSSL wants the socket: it must not block. */
                evutil_make_socket_nonblocking(b->fd);
                /* Connector/C reads TLS through a BIO of its own that waits inside its
                 * calls; the relay needs a plain non-blocking socket BIO (Connector/C's
                 * own calls keep working: they wait on WANT_READ/WANT_WRITE themselves). */
                BIO *bio = BIO_new_socket(b->fd, BIO_NOCLOSE);
                if (bio)
                    SSL_set_bio(b->ssl, bio, bio);
                else
                    b->ssl = NULL;
            }
            if (!b->ssl && mysql_get_ssl_cipher(b->mysql)) {
                rc = -1;
                b->err_code = 2026;
                snprintf(b->err_state, sizeof(b->err_state), "HY000");
                snprintf(b->err_msg, sizeof(b->err_msg),
                         "TLS: cannot reach the TLS session of this Connector/C version");
            }
            if (rc == 0 && b->pool->env->tls_mode == BTLS_VERIFY_FULL && b->ssl &&
                SSL_get_verify_result(b->ssl) == X509_V_OK &&
                !cert_names_host(b->ssl, b->pool->env->host)) {
                rc = -1;
                b->err_code = 2026;
                snprintf(b->err_state, sizeof(b->err_state), "HY000");
                snprintf(b->err_msg, sizeof(b->err_msg),
                         "TLS: the server's certificate is not for host '%s'",
                         b->pool->env->host);
            }
            if (rc == 0 &&
                (b->pool->env->tls_mode == BTLS_VERIFY_CA ||
                 b->pool->env->tls_mode == BTLS_VERIFY_FULL) &&
                (!b->ssl || SSL_get_verify_result(b->ssl) != X509_V_OK)) {
                rc = -1;
                b->err_code = 2026;
                snprintf(b->err_state, sizeof(b->err_state), "HY000");
                snprintf(b->err_msg, sizeof(b->err_msg),
                         "TLS: the server's certificate is not signed by the configured ca (%s)",
                         b->ssl ? X509_verify_cert_error_string(SSL_get_verify_result(b->ssl))
                                : "no TLS");
            }
            /* Connector/C asks a MariaDB server for extended metadata whenever it offers it;
             * the relay then strips it for clients, which never get that capability. */
            unsigned long caps = 0, ext = 0;
            mariadb_get_infov(b->mysql, MARIADB_CONNECTION_SERVER_CAPABILITIES, &caps);
            mariadb_get_infov(b->mysql, MARIADB_CONNECTION_EXTENDED_SERVER_CAPABILITIES, &ext);
            b->ext_metadata =
                !(caps & CLIENT_MYSQL) && (ext & (MARIADB_CLIENT_EXTENDED_METADATA >> 32));
            b->mariadb = !(caps & CLIENT_MYSQL);
            b->cur_db = b->pool->env->database && !b->no_db ? strdup(b->pool->env->database)
                                                            : NULL;
            snprintf(b->charset, sizeof(b->charset), "utf8mb4");
            b->text_cs_known = false;
        }
        break;
    case BOP_CHANGE_USER:
        rc = b->ret_bool ? -1 : 0;
        if (rc == 0) {
            free(b->cur_db);
            b->cur_db = NULL;
            b->mode = b->default_mode;
            b->read_only = false;
            snprintf(b->charset, sizeof(b->charset), "utf8mb4");
            b->text_cs_known = false;
            stmt_cache_clear(b); /* the server closed them */
            b->parse_epoch++;
            b->dirty = false;
            b->diag = b->diag_hold = false;
            b->status = ST_AUTOCOMMIT;
            b->tainted = false;
        }
        break;
    case BOP_SELECT_DB:
        rc = b->ret_int ? -1 : 0;
        if (rc == 0) {
            free(b->cur_db);
            b->cur_db = strdup(b->op_text);
        }
        break;
    case BOP_RESET:
        rc = b->ret_int ? -1 : 0;
        if (rc == 0) {
            b->mode = b->default_mode;
            b->multi_stmt = -1;
            b->read_only = false;
            snprintf(b->charset, sizeof(b->charset), "utf8mb4");
            b->text_cs_known = false;
            stmt_cache_clear(b); /* the server closed them */
            b->parse_epoch++;
            b->dirty = false;
            b->diag = b->diag_hold = false;
            b->status = ST_AUTOCOMMIT;
            b->tainted = false;
        }
        break;
    case BOP_CHARSET:
        rc = b->ret_int ? -1 : 0;
        if (rc == 0) {
            size_t n = strnlen(b->op_text, sizeof(b->charset) - 1);
            memcpy(b->charset, b->op_text, n);
            b->charset[n] = '\0';
            b->text_cs_known = false;
            b->parse_epoch++;
        }
        break;
    case BOP_READ_MODE:
        rc = -1;
        if (b->read_fresh) /* a new or reset session: nothing set yet */
            session_vars_clear(b->vars, &b->n_vars);
        if (b->op_phase == 2 && b->ret_res) {
            MYSQL_ROW row = mysql_fetch_row(b->ret_res);
            unsigned long *lens = mysql_fetch_lengths(b->ret_res);
            if (row && lens) {
                memset(&b->mode, 0, sizeof(b->mode));
                sqlpolicy_mode_from_string(row[0] ? row[0] : "", row[0] ? lens[0] : 0,
                                           &b->mode);
                if (b->read_fresh)
                    b->default_mode = b->mode;
                b->resync = false;
                rc = 0;
            }
            mysql_free_result(b->ret_res);
            b->ret_res = NULL;
        }
        break;
    case BOP_FETCH:
        rc = b->ret_int ? -1 : 0;
        if (rc == 0 && b->ret_res) {
            if (!b->fetch_more && mysql_errno(b->mysql))
                rc = -1; /* the row stream broke */
            if (b->fetch_more && b->fd >= 0)
                shutdown(b->fd, SHUT_RDWR); /* nobody reads the rest: this connection ends */
            if (rc == 0 || b->fetch_more) {
                mysql_free_result(b->ret_res);
                b->ret_res = NULL;
            }
        }
        free(b->fetch_sql);
        b->fetch_sql = NULL;
        break;
    default:
        rc = b->ret_int ? -1 : 0;
        break;
    }
    unsigned cerr = b->op == BOP_CONNECT && rc && b->op_phase == 0 && b->err_code != 2026
                        ? mysql_errno(b->mysql)
                        : 0;
    /* Not reached (refused, unreachable, no answer in time): the resolver moves to the
     * name's next address and asks DNS again. */
    int others = cerr == 2002 || cerr == 2003 || cerr == 2013
                     ? resolve_failed(b->pool->env->host, b->login[0])
                     : 0;
    if ((cerr == 2002 || cerr == 2003) && now_ms() < b->op_deadline_ms &&
        others > b->conn_tries) {
        /* The name has other addresses: try the next one, as Connector/C does with all the
         * addresses of a name it resolves itself (within the same deadline). */
        log_info("env %s: cannot connect to %s (%s): trying the next address of %s",
                 b->pool->env->name, b->login[0], mysql_error(b->mysql), b->pool->env->host);
        b->conn_tries++;
        backend_unwatch(b);
        mysql_close(b->mysql);
        b->fd = -1;
        be_new_handle(b);
        be_step(b, -1);
        return;
    }
    if (rc && !(b->op == BOP_CONNECT && (b->err_code == 2026 || b->op_phase == 1))) {
        be_take_error(b);
        if (b->op_deadline_ms && now_ms() >= b->op_deadline_ms) {
            /* Connector/C's "Lost connection" would hide that the server fell silent. */
            b->err_code = 2013;
            snprintf(b->err_state, sizeof(b->err_state), "HY000");
            snprintf(b->err_msg, sizeof(b->err_msg), "the server did not answer within %lld ms",
                     b->pool->env->pool.connect_timeout_ms);
        }
    }
    if (b->op == BOP_FETCH && rc && b->ret_res) {
        mysql_free_result(b->ret_res);
        b->ret_res = NULL;
    }
    if ((b->op == BOP_CONNECT || b->op == BOP_RESET || b->op == BOP_CHANGE_USER) && rc == 0) {
        /* A new or reset session: learn how it reads SQL before anyone uses it. */
        b->op = BOP_READ_MODE;
        b->op_phase = 0;
        be_set_deadline(b);
        b->read_fresh = true;
        be_step(b, -1);
        return;
    }
    if (b->op == BOP_QUERY && rc == 0) {
        /* The session's status after the proxy's own statement (a held-back BEGIN, SET
         * autocommit): whether the connection may go back to the pool depends on it. */
        unsigned int st = 0;
        if (mariadb_get_infov(b->mysql, MARIADB_CONNECTION_SERVER_STATUS, &st) == 0)
            b->status = (uint16_t)(st & ~(unsigned)ST_SESSION_STATE_CHANGED);
        /* Setup statements return no rows, but drain any result to keep the protocol in step. */
        MYSQL_RES *res = mysql_use_result(b->mysql);
        if (res) {
            mysql_free_result(res);
            rc = -1;
            b->err_code = 2014;
            snprintf(b->err_state, sizeof(b->err_state), "HY000");
            snprintf(b->err_msg, sizeof(b->err_msg), "unexpected result set");
        }
    }
    b->op = BOP_NONE;
    b->op_deadline_ms = 0;
    be_done_fn done = b->done;
    b->done = NULL;
    if (done)
        done(b, rc, b->done_arg);
}

/* Every operation but BOP_FETCH (a statement of the fan-out, bounded by its job) is a short
 * round trip: it must end within the pool's connect_timeout, whatever the server does. */
static void be_set_deadline(backend *b)
{
    long long ms = b->pool->env->pool.connect_timeout_ms;
    b->op_deadline_ms = b->op == BOP_FETCH ? 0 : now_ms() + (uint64_t)(ms > 0 ? ms : 1);
}

static void be_begin(backend *b, be_op op, be_done_fn done, void *arg)
{
    backend_unwatch(b);
    b->op = op;
    be_set_deadline(b);
    b->op_phase = 0;
    b->done = done;
    b->done_arg = arg;
    be_step(b, -1);
}

static uint64_t fnv(uint64_t x, const char *s)
{
    for (; s && *s; s++)
        x = (x ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (x ^ 0xFF) * 0x100000001b3ULL; /* a separator: "ab","c" differs from "a","bc" */
}

uint64_t backend_target(const cfg_env *e)
{
    char num[32];
    snprintf(num, sizeof(num), "%d/%d", e->port, (int)e->tls_mode);
    uint64_t x = 0xcbf29ce484222325ULL;
    x = fnv(x, e->host);
    x = fnv(x, num);
    x = fnv(x, e->user);
    x = fnv(x, e->password);
    return fnv(x, e->tls_ca);
}

/* Connector/C's handler of a server's request for a local file, for the proxy's own
 * statements on its connections: it never opens anything, the server gets an empty file.
 * (A client's LOAD DATA LOCAL INFILE is relayed by relay.c, which never asks Connector/C:
 * the file comes from the client.) */
static int no_file_init(void **ptr, const char *name, void *userdata)
{
    (void)name;
    (void)userdata;
    *ptr = NULL;
    return 1;
}

static int no_file_read(void *ptr, char *buf, unsigned int len)
{
    (void)ptr;
    (void)buf;
    (void)len;
    return -1;
}

static void no_file_end(void *ptr)
{
    (void)ptr;
}

static int no_file_error(void *ptr, char *msg, unsigned int len)
{
    (void)ptr;
    snprintf(msg, len, "envproxy: the proxy sends no local file of its own");
    return 2000;
}

/* A new Connector/C handle for b, with every option of a connection to its environment. */
static void be_new_handle(backend *b)
{
    const cfg_env *e = b->pool->env;
    b->mysql = mysql_init(NULL);
    if (!b->mysql)
        abort();
    unsigned timeout = (unsigned)((e->pool.connect_timeout_ms + 999) / 1000);
    unsigned io_timeout = 30;
    if (b->timeout_s)
        timeout = io_timeout = b->timeout_s; /* the health checker's own deadline */
    my_bool off = 0;
    mysql_options(b->mysql, MYSQL_OPT_NONBLOCK, 0);
    mysql_options(b->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(b->mysql, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_options(b->mysql, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    /* CLIENT_LOCAL_FILES, so that the server may ask for the file of a client's LOAD DATA
     * LOCAL INFILE (relayed, see relay.c); Connector/C itself answers any request with an
     * empty file. */
    unsigned local_infile = 1;
    mysql_options(b->mysql, MYSQL_OPT_LOCAL_INFILE, &local_infile);
    mysql_set_local_infile_handler(b->mysql, no_file_init, no_file_read, no_file_end,
                                   no_file_error, NULL);
    my_bool on = 1;
    switch (e->tls_mode) {
    case BTLS_DISABLED:
        mysql_options(b->mysql, MYSQL_OPT_SSL_ENFORCE, &off);
        break;
    case BTLS_PREFERRED: /* TLS when the server offers it */
        mysql_ssl_set(b->mysql, NULL, NULL, e->tls_ca, NULL, NULL);
        mysql_options(b->mysql, MYSQL_OPT_SSL_ENFORCE, &off);
        break;
    case BTLS_REQUIRED:
    case BTLS_VERIFY_CA: /* the chain is checked after connecting (backend_check_tls) */
        mysql_ssl_set(b->mysql, NULL, NULL, e->tls_ca, NULL, NULL);
        mysql_options(b->mysql, MYSQL_OPT_SSL_ENFORCE, &on);
        break;
    case BTLS_VERIFY_FULL:
        /* Chain and host name, checked after connecting: the connection goes to the
         * address resolve.c keeps, which Connector/C would compare the certificate with. */
        mysql_ssl_set(b->mysql, NULL, NULL, e->tls_ca, NULL, NULL);
        mysql_options(b->mysql, MYSQL_OPT_SSL_ENFORCE, &on);
        if (resolve_is_literal(e->host) && strcmp(e->host, "localhost") != 0)
            mysql_options(b->mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
        break;
    }
    mysql_options(b->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(b->mysql, MYSQL_OPT_CONNECT_ATTR_RESET, 0);
    mysql_options4(b->mysql, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "envproxy");
}

void backend_connect(backend *b, struct event_base *base, be_done_fn done, void *arg)
{
    b->base = base;
    b->target = backend_target(b->pool->env);
    b->conn_tries = 0;
    be_new_handle(b);
    be_begin(b, BOP_CONNECT, done, arg);
}

void backend_select_db(backend *b, const char *db, be_done_fn done, void *arg)
{
    snprintf(b->op_text, sizeof(b->op_text), "%s", db);
    be_begin(b, BOP_SELECT_DB, done, arg);
}

void backend_query(backend *b, const char *sql, be_done_fn done, void *arg)
{
    snprintf(b->op_text, sizeof(b->op_text), "%s", sql);
    be_begin(b, BOP_QUERY, done, arg);
}

void backend_reset(backend *b, be_done_fn done, void *arg)
{
    be_begin(b, BOP_RESET, done, arg);
}

void backend_set_multi(backend *b, bool on, be_done_fn done, void *arg)
{
    b->multi_stmt = on ? 1 : 0;
    be_begin(b, BOP_SET_OPTION, done, arg);
}

void backend_set_charset(backend *b, const char *cs, be_done_fn done, void *arg)
{
    snprintf(b->op_text, sizeof(b->op_text), "%s", cs);
    be_begin(b, BOP_CHARSET, done, arg);
}

void backend_clear_db(backend *b, be_done_fn done, void *arg)
{
    be_begin(b, BOP_CHANGE_USER, done, arg);
}

void backend_read_mode(backend *b, be_done_fn done, void *arg)
{
    b->read_fresh = false;
    be_begin(b, BOP_READ_MODE, done, arg);
}

void backend_ping(backend *b, be_done_fn done, void *arg)
{
    be_begin(b, BOP_PING, done, arg);
}

void backend_fetch(backend *b, const char *sql,
                   bool (*row_cb)(backend *b, MYSQL_ROW row, unsigned long *lengths, void *arg),
                   be_done_fn done, void *arg)
{
    b->fetch_sql = strdup(sql);
    if (!b->fetch_sql)
        abort();
    b->fetch_row = row_cb;
    b->fetch_more = false;
    be_begin(b, BOP_FETCH, done, arg);
}

/* The callback of backend_watch's registration. */
static void be_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    backend *b = arg;
    if (b->watch_cb) {
        b->watch_cb(fd, what, b->watch_arg);
        return;
    }
    /* Parked and readable: closed by the server, or being taken by another worker. Stop
     * watching; whoever uses it next finds out what happened (backend_is_dead). The pool's
     * lock orders this with a worker taking b from the pool. */
    pthread_mutex_lock(&b->pool->mu);
    event_del(&b->ev);
    b->ev_added = false;
    pthread_mutex_unlock(&b->pool->mu);
}

void backend_watch(backend *b, event_callback_fn cb, void *arg)
{
    short what = EV_READ | EV_PERSIST;
    if (evbuffer_get_length(b->out) > 0)
        what |= EV_WRITE;
    b->watch_cb = cb;
    b->watch_arg = arg;
    if (b->ev_added && event_get_callback(&b->ev) == be_watch_cb &&
        event_get_events(&b->ev) == what && event_get_base(&b->ev) == b->base)
        return; /* registered already (maybe parked): no system call */
    backend_unwatch(b);
    event_assign(&b->ev, b->base, b->fd, what, be_watch_cb, b);
    event_add(&b->ev, NULL);
    b->ev_added = true;
}

void backend_park(backend *b)
{
    b->watch_cb = NULL;
    b->watch_arg = NULL;
    if (b->ev_added && (event_get_callback(&b->ev) != be_watch_cb ||
                        event_get_events(&b->ev) != (EV_READ | EV_PERSIST)))
        backend_unwatch(b);
}

int backend_flush(backend *b)
{
    if (b->ssl) {
        while (evbuffer_get_length(b->out) > 0) {
            size_t n = evbuffer_get_length(b->out);
            if (n > 65536)
                n = 65536;
            unsigned char *p = evbuffer_pullup(b->out, (ssize_t)n);
            ERR_clear_error();
            int w = SSL_write(b->ssl, p, (int)n);
            if (w > 0) {
                evbuffer_drain(b->out, (size_t)w);
                continue;
            }
            int e = SSL_get_error(b->ssl, w);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                return 0;
            return -1;
        }
        return 0;
    }
    while (evbuffer_get_length(b->out) > 0) {
        int n = evbuffer_write(b->out, b->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            return -1;
        }
        if (n == 0)
            return 0;
    }
    return 0;
}

/* Whether b sits parked on base (the calling thread's loop) and its socket has not been seen
 * readable since: a parked registration that sees bytes or EOF unregisters itself
 * (be_watch_cb), and one whose callback waits to run in this turn of the loop is active. The
 * event's flags are read from struct event (event_struct.h): libevent has no call that tells
 * "active" from "pending". */
static bool parked_quiet(const backend *b, struct event_base *base)
{
    /* b->base first: a registration on another worker's loop may be changing under us
     * (be_watch_cb there), one on ours only changes on this thread. */
    return b->fd >= 0 && b->base == base && b->ev_added && event_get_base(&b->ev) == base &&
           event_get_callback(&b->ev) == be_watch_cb &&
           event_get_events(&b->ev) == (EV_READ | EV_PERSIST) &&
           !(b->ev.ev_evcallback.evcb_flags & (EVLIST_ACTIVE | EVLIST_ACTIVE_LATER));
}

/* A connection used within this long is trusted to the loop's watch; one idle longer is
 * peeked at anyway. The watch only knows what the loop's last poll saw: a close that came
 * after it (the server's wait_timeout, a KILL, a restart) would otherwise reach the next
 * statement as a lost connection instead of a quiet reconnect. Servers close idle
 * connections after seconds (wait_timeout is at least 1 s), not within a millisecond of use. */
#define BACKEND_QUIET_TRUST_MS 1000

bool backend_idle_dead(backend *b, struct event_base *base)
{
    if (parked_quiet(b, base) && now_ms() - b->idle_since_ms < BACKEND_QUIET_TRUST_MS)
        return false; /* the loop watched it a moment ago: no peek needed */
    return backend_is_dead(b);
}

bool backend_is_dead(backend *b)
{
    char c;
    if (b->fd < 0)
        return true;
    ssize_t n = recv(b->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true; /* closed by the server */
    if (n > 0)
        return !b->ssl; /* an unsolicited packet (with TLS: maybe a session ticket) */
    return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

void backend_free(backend *b)
{
    if (!b)
        return;
    pool *pl = b->pool;
    pthread_mutex_lock(&pl->mu);
    if (b->all_prev)
        b->all_prev->all_next = b->all_next;
    else
        pl->all = b->all_next;
    if (b->all_next)
        b->all_next->all_prev = b->all_prev;
    pthread_mutex_unlock(&pl->mu);
    backend_unwatch(b);
    if (b->mysql) {
        /* Connector/C would write COM_QUIT; a closed or busy socket does not need it. */
        mysql_close(b->mysql);
    }
    evbuffer_free(b->in);
    evbuffer_free(b->out);
    free(b->fetch_sql);
    free(b->cur_db);
    for (int i = 0; i < 4; i++) {
        if (b->login[i]) {
            OPENSSL_cleanse(b->login[i], strlen(b->login[i]));
            free(b->login[i]);
        }
    }
    stmt_cache_clear(b);
    if (b->kill) {
        if (b->kill->starting)
            b->kill->over = true; /* backend_kill_query frees it */
        else
            free(b->kill);
    }
    session_vars_clear(b->vars, &b->n_vars);
    free(b);
}

static void kill_done(backend *b, int rc, void *arg)
{
    struct be_kill *k = arg;
    /* 1094 (Unknown thread id): the connection had ended already, with its statement. */
    bool ended = rc == 0 || b->err_code == 1094;
    if (!ended)
        log_warn("env %s: KILL QUERY %lu failed: %s", b->pool->env->name, k->thread_id,
                 b->err_msg);
    else if (rc)
        log_debug("env %s: KILL QUERY %lu: the connection had ended", b->pool->env->name,
                  k->thread_id);
    if (k->done)
        k->done(k->arg, ended);
    backend_free(b); /* and k with it */
}

static void kill_connected(backend *b, int rc, void *arg)
{
    struct be_kill *k = arg;
    if (rc) {
        kill_done(b, rc, arg);
        return;
    }
    char sql[64];
    snprintf(sql, sizeof(sql), "KILL QUERY %lu", k->thread_id);
    backend_query(b, sql, kill_done, arg);
}

struct be_kill *backend_kill_query(pool *pl, struct event_base *base, unsigned long thread_id,
                                   be_kill_fn done, void *arg)
{
    struct be_kill *k = calloc(1, sizeof(*k));
    if (!k)
        abort();
    k->thread_id = thread_id;
    k->done = done;
    k->arg = arg;
    k->starting = true;
    backend *b = backend_new(pl);
    b->kill = k; /* freed with b, also when the pool goes first (shutdown) */
    backend_connect(b, base, kill_connected, k);
    k->starting = false;
    if (k->over) {
        free(k);
        return NULL;
    }
    return k;
}

void backend_kill_forget(struct be_kill *k)
{
    if (k)
        k->done = NULL;
}

int backend_read(backend *b, uint8_t *buf, size_t cap)
{
    if (!b->ssl) {
        ssize_t n = read(b->fd, buf, cap);
        if (n >= 0)
            return (int)n;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2 : -1;
    }
    /* TLS: read until OpenSSL wants the socket again or buf is full; what OpenSSL still
     * holds then would not make the socket readable, so the read event is raised again. */
    size_t total = 0;
    while (total < cap) {
        ERR_clear_error();
        size_t want = cap - total > INT_MAX ? INT_MAX : cap - total;
        int n = SSL_read(b->ssl, buf + total, (int)want);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        int e = SSL_get_error(b->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return total ? (int)total : -2;
        if (e == SSL_ERROR_ZERO_RETURN)
            return total ? (int)total : 0;
        return total ? (int)total : -1;
    }
    if (SSL_pending(b->ssl) > 0)
        event_active(&b->ev, EV_READ, 0); /* more is buffered: come back */
    return (int)total;
}
