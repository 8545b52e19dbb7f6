/* client.c: the client side: handshake, authentication, and one command at a time.
 *
 * A client moves through cl_state (envproxy.h). Every command is read whole, checked
 * (routing, grants, policy), then either answered here or run on a backend connection of
 * the chosen environment: the connection is borrowed from the pool once per environment,
 * made ready (character set, database, read-only mode, multi-statements) and the command
 * is relayed (relay.c). Pipelined commands wait in the input buffer and run in order. */
#include "audit.h"
#include "envproxy.h"
#include "log.h"
#include "rewrite.h"
#include "queries_sql.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLUGIN_SHA2 "caching_sha2_password"
#define TLS_SOCKET_OUT_MAX (64 * 1024) /* encrypted bytes queued for a TLS client's socket */
#define CLIENT_LINGER_MS 2000          /* a closing client's input is discarded this long at most */
#define PLUGIN_NATIVE "mysql_native_password"

/* What the proxy offers. Never COMPRESS or SESSION_TRACK. LOCAL_FILES lets a client's own
 * LOAD DATA LOCAL INFILE statement send the file it names (relay.c). CAP_LONG_PASSWORD is
 * MariaDB's CLIENT_MYSQL: left out, as MariaDB does, so that clients read the extended
 * capabilities below. */
#define SERVER_CAPS                                                                               \
    (CAP_LONG_FLAG | CAP_LOCAL_FILES | CAP_CONNECT_WITH_DB | CAP_PROTOCOL_41 | CAP_INTERACTIVE | CAP_SSL |       \
     CAP_TRANSACTIONS | CAP_SECURE_CONNECTION | CAP_MULTI_STATEMENTS | CAP_MULTI_RESULTS |       \
     CAP_PS_MULTI_RESULTS | CAP_PLUGIN_AUTH | CAP_CONNECT_ATTRS | CAP_PLUGIN_AUTH_LENENC |       \
     CAP_DEPRECATE_EOF)

/* MariaDB's extended capabilities offered: column definitions with extended metadata (JSON
 * and other data types' names), passed through from the backend or added empty. */
#define SERVER_EXT_CAPS ((uint32_t)(MARIADB_CLIENT_EXTENDED_METADATA >> 32))

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_process_input(client *c);
static void prepare_step(client *c);

/* ---- reading ----------------------------------------------------------------------------- */

/* Most bytes taken from a plain client's socket by one read. */
#define CLIENT_READ_CHUNK 16384

/* A plain client's socket is read by an event of our own with one recv into space reserved
 * in the bufferevent's input: bufferevent_socket's own reads ask the kernel FIONREAD first,
 * a system call per statement for nothing. The bufferevent still writes (and with TLS its
 * filter reads through it). */
static void client_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    ssize_t n = -1;
    int err = ENOMEM;
    if (evbuffer_get_length(in) == 0 && !relay_reads_file(c)) {
        /* The usual case, one command and nothing left from before: the bytes are read into
         * the worker's buffer and lent to the client for the callback (process_packets
         * takes its packets from there); client_process_input copies what is left of them
         * into the input before the buffer serves another client (client_input_own). */
        n = recv(fd, c->w->read_buf, WORKER_READ_BUF, 0);
        if (n > 0) {
            c->lent = c->w->read_buf;
            c->lent_len = (size_t)n;
            c->lent_off = 0;
            client_read_cb(c->bev, c);
            return;
        }
        err = errno;
    } else {
        /* A bufferevent keeps the end of its input frozen against other writers; its own
         * read unfreezes it the same way. */
        struct evbuffer_iovec v;
        evbuffer_unfreeze(in, 0);
        if (evbuffer_reserve_space(in, CLIENT_READ_CHUNK, &v, 1) == 1) {
            n = recv(fd, v.iov_base, v.iov_len < CLIENT_READ_CHUNK ? v.iov_len : CLIENT_READ_CHUNK,
                     0);
            err = errno;
            if (n > 0) {
                v.iov_len = (size_t)n;
                evbuffer_commit_space(in, &v, 1);
            }
        }
        evbuffer_freeze(in, 0);
    }
    if (n > 0) {
        client_read_cb(c->bev, c);
        return;
    }
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
        return;
    client_event_cb(c->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

/* The end of a read lent from the worker's buffer (client_sock_read_cb): the bytes the
 * commands did not take are copied into the input's own memory. */
void client_input_own(client *c)
{
    if (!c->lent)
        return;
    size_t left = c->lent_len - c->lent_off;
    const uint8_t *rest = c->lent + c->lent_off;
    c->lent = NULL;
    if (!left)
        return;
    /* The lent bytes come before anything the input holds (it was empty when they were
     * read). A bufferevent freezes its input's end, not its start. */
    if (evbuffer_prepend(bufferevent_get_input(c->bev), rest, left) != 0)
        abort(); /* as an allocation that failed anywhere else */
}

/* Starts or stops reading the client (the plain socket's event, or the TLS bufferevent). */
static void client_read_on(client *c)
{
    if (c->rd_ev)
        event_add(c->rd_ev, NULL); /* no system call when it is registered already */
    else
        bufferevent_enable(c->bev, EV_READ);
}

static void client_read_off(client *c)
{
    if (c->rd_ev)
        event_del(c->rd_ev);
    else
        bufferevent_disable(c->bev, EV_READ);
}

/* ---- sending ----------------------------------------------------------------------------- */

void client_send(client *c, pbuf *b)
{
    if (c->no_reply) {
        /* A command without a reply: an error is kept for the statement's EXECUTE. */
        if (b->len > PKT_HEADER)
            stmt_defer_error(c, b->data + PKT_HEADER, b->len - PKT_HEADER);
        pbuf_free(b);
        return;
    }
    /* What the relay gathered goes first, whole packets it passes on in place included:
     * their sequence ids come before b's. */
    relay_flush_out(c);
    if (b->len)
        evbuffer_add(c->rl_out, b->data, b->len);
    relay_flush_out(c);
    pbuf_free(b);
}

static void client_send_errv(client *c, uint16_t code, const char *state, const char *fmt,
                             va_list ap)
{
    pbuf b;
    pbuf_init(&b);
    pkt_build_errv(&b, &c->seq, code, state, fmt, ap);
    client_send(c, &b);
}

void client_send_err(client *c, uint16_t code, const char *state, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    client_send_errv(c, code, state, fmt, ap);
    va_end(ap);
}

void client_send_ok(client *c, uint16_t status)
{
    pbuf b;
    pbuf_init(&b);
    pkt_build_ok(&b, &c->seq, 0, 0, status, 0, NULL, 0);
    client_send(c, &b);
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg);
static void client_wake_cb(evutil_socket_t fd, short what, void *arg);
static void txn_timer_cb(evutil_socket_t fd, short what, void *arg);

void client_timer_arm(client *c, uint64_t now, long long ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    c->timer_due_ms = now + (uint64_t)ms;
}

void client_timer_stop(client *c)
{
    evtimer_del(c->timer);
    c->timer_due_ms = 0;
}

static void set_timer(client *c, long long ms)
{
    client_timer_arm(c, now_ms(), ms);
}

/* Sends an error and closes the client once it has been written. */
static void client_fail(client *c, uint16_t code, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void client_fail(client *c, uint16_t code, const char *state, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    client_send_errv(c, code, state, fmt, ap);
    va_end(ap);
    client_close_after_flush(c);
}

long long client_statement_timeout(const client *c, const cfg_env *env)
{
    /* As max_rows: the operator's override for this account (a backup account's long
     * SELECTs) replaces the environment's. */
    if (c->acct && c->acct->statement_timeout_ms >= 0)
        return c->acct->statement_timeout_ms;
    return env->limits.statement_timeout_ms;
}

long long client_max_rows(const client *c, const cfg_env *env)
{
    /* The override replaces the environment's cap rather than lowering it: it is the
     * operator's decision for this account (a backup account gets 0). */
    if (c->acct && c->acct->max_rows >= 0)
        return c->acct->max_rows;
    return env->limits.max_rows;
}

/* Whether sql holds word (ASCII letters, digits and '_') as a word of its own, in any case. */
static bool text_has_word(const char *sql, size_t len, const char *word)
{
    const size_t wn = strlen(word);
    const char first = (char)(word[0] | 0x20);
    for (size_t i = 0; i + wn <= len; i++) {
        if ((sql[i] | 0x20) != first || strncasecmp(sql + i, word, wn) != 0)
            continue;
        bool before = i == 0 || !(isalnum((unsigned char)sql[i - 1]) || sql[i - 1] == '_');
        bool after =
            i + wn == len || !(isalnum((unsigned char)sql[i + wn]) || sql[i + wn] == '_');
        if (before && after)
            return true;
    }
    return false;
}

/* Whether the text begins (after blanks and comments) with SHOW, DESCRIBE, DESC or EXPLAIN
 * (`EXPLAIN t` lists t's columns): a list of databases, tables, columns, indexes, ... of
 * the schema. */
static bool text_lists_schema(const char *sql, size_t len)
{
    size_t i = 0;
    for (int guard = 0; guard < 64 && i < len; guard++) {
        if (isspace((unsigned char)sql[i])) {
            i++;
        } else if (sql[i] == '#' || (sql[i] == '-' && i + 2 < len && sql[i + 1] == '-' &&
                                     isspace((unsigned char)sql[i + 2]))) {
            while (i < len && sql[i] != '\n')
                i++;
        } else if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
            const char *end = memmem(sql + i + 2, len - i - 2, "*/", 2);
            if (!end)
                return false;
            i = (size_t)(end - sql) + 2;
        } else {
            break;
        }
    }
    static const char *const words[] = {"SHOW", "DESCRIBE", "DESC", "EXPLAIN"};
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t n = strlen(words[w]);
        if (i + n <= len && strncasecmp(sql + i, words[w], n) == 0 &&
            (i + n == len || !(isalnum((unsigned char)sql[i + n]) || sql[i + n] == '_')))
            return true;
    }
    return false;
}

/* Whether a result that passes max_rows must fail rather than end cut short: the client
 * is a dump program or a batch command line (cap_fails), or the statement reads as a dump's
 * (mysqldump, mariadb-dump, mydumper and the scripts that copy them ask for SQL_NO_CACHE),
 * or it lists the schema (it begins with SHOW, DESCRIBE or EXPLAIN, or reads
 * INFORMATION_SCHEMA): a list of tables cut short reads as the whole schema to whatever
 * reads it, a dump program that then leaves tables out (mydumper sends no program name), a
 * GUI's navigator, an ORM's reflection. Called once per result, when the cap is passed
 * (relay.c, virtual.c): the text is not scanned on the way of results that stay under it.
 * A multi-statement text with a word in any of its statements fails: the safe side. */
bool client_cap_fails(const client *c)
{
    if (c->cap_fails)
        return true;
    const char *sql = NULL;
    size_t len = 0;
    if (c->cmd.len > 0 && c->cmd.data[0] == CMD_QUERY) {
        sql = (const char *)c->cmd.data + 1;
        len = c->cmd.len - 1;
    } else if (c->cmd.len > 0 && c->stmt) {
        sql = c->stmt->sql;
        len = c->stmt->sql_len;
    }
    if (!sql)
        return false;
    return text_has_word(sql, len, "SQL_NO_CACHE") ||
           text_has_word(sql, len, "INFORMATION_SCHEMA") || text_lists_schema(sql, len);
}

size_t client_out_queued(const client *c)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
    if (c->tls) {
        /* The TLS filter hands its output, encrypted, to the socket's bufferevent. */
        struct bufferevent *under = bufferevent_get_underlying(c->bev);
        if (under)
            n += evbuffer_get_length(bufferevent_get_output(under));
    }
    return n;
}

/* Whether the client sent bytes the proxy has not read: closing the socket then makes the
 * kernel send a reset, which can destroy the error packet before the client reads it. */
static bool unread_input(const client *c)
{
    if ((c->lent && c->lent_off < c->lent_len) ||
        evbuffer_get_length(bufferevent_get_input(c->bev)))
        return true;
    struct bufferevent *under = c->tls ? bufferevent_get_underlying(c->bev) : NULL;
    if (under && evbuffer_get_length(bufferevent_get_input(under)))
        return true;
    int pending = 0;
    return ioctl(c->fd, FIONREAD, &pending) == 0 && pending > 0;
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    char scratch[16384];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        client_free(c); /* the client closed its side, or the socket broke */
        return;
    }
}

/* Everything was written but the client is still sending: stop sending (FIN after the
 * error), discard what comes in until the client closes or a short deadline passes, then
 * close without a reset. */
static void linger(client *c)
{
    client_read_off(c);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    shutdown(c->fd, SHUT_WR);
    c->linger_ev = event_new(c->w->base, c->fd, EV_READ | EV_PERSIST, linger_cb, c);
    if (!c->linger_ev) {
        client_free(c);
        return;
    }
    event_add(c->linger_ev, NULL);
    uint64_t now = now_ms();
    if (c->close_deadline_ms > now + CLIENT_LINGER_MS)
        c->close_deadline_ms = now + CLIENT_LINGER_MS;
    set_timer(c, (long long)(c->close_deadline_ms - now));
}

/* CL_CLOSING: frees the client once everything queued reached the socket (after TLS's
 * close_notify) and it sent nothing more, or once the flush deadline passed. */
static void closing_progress(client *c)
{
    if (c->linger_ev) { /* only the deadline is left to wait for */
        uint64_t now = now_ms();
        if (now >= c->close_deadline_ms)
            client_free(c);
        else
            set_timer(c, (long long)(c->close_deadline_ms - now));
        return;
    }
    if (c->tls && !c->tls_shut && client_out_queued(c) == 0) {
        /* Everything reached the socket: end the TLS session properly, so that the client
         * reads the error before the end of the stream instead of "unexpected eof". With
         * nothing queued the close_notify is taken whole; then wait for it to drain. */
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        c->tls_shut = true;
        if (ssl)
            SSL_shutdown(ssl);
    }
    uint64_t now = now_ms();
    size_t left = client_out_queued(c);
    if (left == 0 && now < c->close_deadline_ms && unread_input(c)) {
        linger(c);
        return;
    }
    if (left == 0 || now >= c->close_deadline_ms) {
        if (left)
            log_info("conn %u %s: closed with %zu bytes unsent (the client did not read them "
                     "within %d ms)",
                     c->id, c->addr, left, CLIENT_CLOSE_FLUSH_MS);
        client_free(c);
        return;
    }
    set_timer(c, (long long)(c->close_deadline_ms - now));
}

/* The socket's output of a closing TLS client drained: see whether it is done. */
static void closing_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    client *c = arg;
    if (info->n_deleted && evbuffer_get_length(buf) == 0 && c->state == CL_CLOSING)
        event_active(c->timer, EV_TIMEOUT, 1); /* not from inside the bufferevent's write */
}

void client_close_after_flush(client *c)
{
    if (c->state == CL_CLOSING)
        return;
    c->state = CL_CLOSING;
    client_read_off(c);
    c->close_deadline_ms = now_ms() + CLIENT_CLOSE_FLUSH_MS;
    if (c->tls && !c->close_cb) {
        struct bufferevent *under = bufferevent_get_underlying(c->bev);
        if (under)
            c->close_cb = evbuffer_add_cb(bufferevent_get_output(under), closing_out_cb, c);
    }
    closing_progress(c);
    /* else client_write_cb, closing_out_cb or the timer goes on */
}

/* ---- audit -------------------------------------------------------------------------------- */

void client_audit(client *c, const char *outcome, long long rows, double ms, const char *error,
                  const char *event)
{
    /* c->via is one of the three literals (client_new, client_accept_internal): its door
     * for the metrics, and its length for the audit record. */
    static const uint16_t via_len[3] = {5, 4, 3}; /* "mysql", "http", "mcp" */
    int door = c->via[0] == 'h' ? 1 : c->via[1] == 'c' ? 2 : 0;
    if (!event) /* per door: one count per statement, as the audit log has one line */
        metrics_door(c->p, door);
    if (!c->p->audit)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    audit_record r = {
        .ts_ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000,
        .conn = c->id,
        .user = c->user,
        .client = c->addr,
        .env = event ? NULL : c->route.env ? c->route.env->name : NULL,
        .db = event ? NULL : c->job_has_db ? c->job_db : NULL,
        .user_len = c->user_len,
        .client_len = c->addr_len,
        .env_len = event || !c->route.env ? 0 : (uint16_t)c->route.env->name_len,
        .db_len = c->job_db_len,
        .via_len = via_len[door],
        .verdict = outcome,
        .rows = rows,
        .ms = ms,
        .error = error,
        .event = event,
        .via = c->via,
    };
    if (!event && c->cmd.len > 0) {
        if (c->cmd.data[0] == CMD_QUERY || c->cmd.data[0] == CMD_STMT_PREPARE) {
            r.sql = (const char *)c->cmd.data + 1;
            r.sql_len = c->cmd.len - 1;
        } else if (c->stmt) {
            r.sql = c->stmt->sql;
            r.sql_len = c->stmt->sql_len;
        }
    }
    audit_ring_log(c->w->audit, &r);
}

/* ---- life cycle -------------------------------------------------------------------------- */

/* A client that takes none of its queued output for client_write_timeout is dropped
 * (client_event_cb): a stalled reader cannot hold a backend connection for long. */
static void set_write_timeout(client *c)
{
    long long ms = c->cfg->client_write_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, &tv);
}

/* A new client on w for socket fd, with its events; host and addr are filled from sa. */
static client *client_new(worker *w, int fd, const struct sockaddr *sa)
{
    proxy *p = w->p;
    client *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->w = w;
    c->p = p;
    c->fd = fd;
    c->cfg = proxy_cfg_get(p);
    c->id = atomic_fetch_add(&p->next_conn_id, 1);
    pthread_mutex_init(&c->ps_mu, NULL);
    atomic_fetch_add(&p->clients_total, 1);
    atomic_fetch_add(&p->clients_current, 1);
    pbuf_init(&c->cmd);
    for (int i = 0; i < CLIENT_MAX_HELD; i++)
        c->held_env[i] = -1;
    c->txn_env = -1;

    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->host, sizeof(c->host), "%s", host);
    snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
    c->addr_len = (uint16_t)strlen(c->addr);

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* A client whose host vanished (a crash, a cut network, a NAT that forgot the flow)
     * sends no FIN: without keepalive its session, and the locks of a transaction it left
     * open on a backend, would stay for ever. Probed after 60 s of silence, closed when 6
     * probes 10 s apart go unanswered. (Internal sessions are not TCP: these fail.) */
    int idle = 60, interval = 10, count = 6;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    evutil_make_socket_nonblocking(fd);
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(w->base, client_timer_cb, c);
    c->txn_timer = evtimer_new(w->base, txn_timer_cb, c);
    c->wake = event_new(w->base, -1, 0, client_wake_cb, c);
    c->rl_out = evbuffer_new();
    c->rd_ev = event_new(w->base, fd, EV_READ | EV_PERSIST, client_sock_read_cb, c);
    if (!c->bev || !c->timer || !c->txn_timer || !c->wake || !c->rl_out || !c->rd_ev)
        abort();
    c->waiter.wake = c->wake;
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    set_write_timeout(c);
    bufferevent_enable(c->bev, EV_WRITE);
    client_read_on(c);

    c->next = w->clients;
    if (w->clients)
        w->clients->prev = c;
    w->clients = c;
    w->n_clients++;
    c->via = "mysql";
    return c;
}

void client_accept(worker *w, int fd, const struct sockaddr *sa, int salen)
{
    proxy *p = w->p;
    client *c = client_new(w, fd, sa);

    /* Scramble: printable ASCII without '$' (some clients treat it specially). */
    RAND_bytes(c->scramble, sizeof(c->scramble));
    for (size_t i = 0; i < sizeof(c->scramble); i++) {
        uint8_t v = (uint8_t)(0x21 + c->scramble[i] % 94);
        c->scramble[i] = v == '$' ? '#' : v;
    }

    char version[128];
    proxy_server_version(p, version, sizeof(version));
    pkt_greeting g = {
        .server_version = version,
        .connection_id = c->id,
        .scramble = c->scramble,
        .capabilities = SERVER_CAPS,
        .charset = 45, /* utf8mb4_general_ci */
        .status = ST_AUTOCOMMIT,
        .auth_plugin = PLUGIN_SHA2,
        .ext_capabilities = SERVER_EXT_CAPS,
    };
    pbuf b;
    pbuf_init(&b);
    c->seq = 0;
    pkt_build_greeting(&b, &c->seq, &g);
    client_send(c, &b);
    c->state = CL_GREETING;
    set_timer(c, c->cfg->handshake_timeout_ms);
    log_debug("conn %u %s: connected", c->id, c->addr);
}

/* Gives back or closes a backend connection the client no longer needs. */
static void orphan_done(backend *b, int rc, void *arg)
{
    if (rc)
        pool_discard(b->pool, b);
    else
        backend_recycle(b);
}

static void let_go(backend *b, bool mid_response)
{
    if (b->op != BOP_NONE) {
        /* An operation runs: finish it without us, then recycle. */
        b->done = orphan_done;
        b->done_arg = NULL;
    } else if (mid_response) {
        /* Mid-response: stop the statement on the server, then drop the connection, which
         * cannot be reset cleanly. */
        if (!atomic_load(&b->pool->proxy->stopping))
            backend_kill_query(b->pool, b->base, b->thread_id, NULL, NULL);
        if (b->fd >= 0)
            shutdown(b->fd, SHUT_RDWR); /* the end of the stream, not a COM_QUIT behind it */
        pool_discard(b->pool, b);
    } else {
        backend_recycle(b);
    }
}

void client_free(client *c)
{
    worker *w = c->w;
    if (c->in_input) {
        /* Called from inside the input loop: free once the loop has returned. */
        if (!c->free_pending) {
            c->free_pending = true;
            c->state_at_free = c->state;
            c->state = CL_CLOSING;
        }
        return;
    }
    cl_state st = c->free_pending ? c->state_at_free : c->state;
    c->state = CL_CLOSING;
    local_unregister(c);
    if (st != CL_GREETING && st != CL_AUTH_SWITCH)
        log_info("conn %u %s user=%s env=%s: disconnected", c->id, c->addr, c->user,
                 c->env ? c->env->name : "-");
    client_timer_stop(c);
    relay_client_gone(c);
    atomic_fetch_sub(&c->p->clients_current, 1);
    if (c->busy) {
        c->busy = false;
        atomic_fetch_sub(&c->p->busy_clients, 1);
    }
    if (st == CL_WAIT_POOL && c->waiter.pool) {
        backend *b = pool_cancel(c->waiter.pool, &c->waiter);
        if (b) {
            backend_attach(b, w->base);
            backend_recycle(b);
        }
    }
    bool be_held = false;
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        if (c->held[i]) {
            if (c->held[i] == c->be)
                be_held = true;
            let_go(c->held[i], st == CL_RELAY && c->held[i] == c->be);
            c->held[i] = NULL;
        }
    }
    if (c->be && !be_held) {
        /* A connection being opened for this client, not yet held. */
        c->be->done = orphan_done;
        c->be->done_arg = NULL;
    }
    c->be = NULL;
    pool_waiter_gone(&c->waiter); /* nothing queued refers to the waiter (or wake) any more */
    event_free(c->wake);
    event_free(c->timer);
    event_free(c->txn_timer);
    evbuffer_free(c->rl_out);
    if (c->linger_ev)
        event_free(c->linger_ev);
    if (c->rd_ev)
        event_free(c->rd_ev);
    if (c->close_cb) {
        struct bufferevent *under = bufferevent_get_underlying(c->bev);
        if (under)
            evbuffer_remove_cb_entry(bufferevent_get_output(under), c->close_cb);
        c->close_cb = NULL;
    }
    bufferevent_free(c->bev);
    proxy_conn_gone(c->p, c->host);
    if (c->counted_user[0])
        proxy_acct_gone(c->counted_user);
    proxy_cfg_put(c->cfg);
    pbuf_free(&c->cmd);
    stmt_free_all(c);
    session_vars_clear(c->vars, &c->n_vars);
    virtual_client_gone(c);
    free(c->rl_vdbs_like);
    free(c->infile_name);
    txn_reset(c);
    if (c->acct_ref)
        proxy_acct_put(c->acct_ref);

    if (c->prev)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_clients--;
    free(c->ps.info); /* unregistered above: no other worker reads ps any more */
    pthread_mutex_destroy(&c->ps_mu);
    free(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    client *c = arg;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
        log_warn("conn %u %s user=%s env=%s: the client took none of its output for %lld ms "
                 "(client_write_timeout); disconnecting it",
                 c->id, c->addr, c->user,
                 c->be ? c->be->pool->env->name : c->env ? c->env->name : "-",
                 c->cfg->client_write_timeout_ms);
        client_free(c); /* a statement under way is killed, its connection closed */
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (what & BEV_EVENT_ERROR) {
            unsigned long e = bufferevent_get_openssl_error(bev);
            if (e) {
                char buf[160];
                ERR_error_string_n(e, buf, sizeof(buf));
                log_info("conn %u %s: TLS error: %s", c->id, c->addr, buf);
            }
        }
        client_free(c);
    }
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    client *c = arg;
    if (c->state == CL_CLOSING) {
        closing_progress(c);
        return;
    }
    if (c->rl_paused)
        relay_resume(c);
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    c->timer_due_ms = 0; /* a timer that fired is no longer added */
    switch (c->state) {
    case CL_GREETING:
    case CL_AUTH_SWITCH:
        log_info("conn %u %s: handshake not completed in time", c->id, c->addr);
        client_free(c);
        return;
    case CL_WAIT_POOL: {
        backend *b = pool_cancel(c->waiter.pool, &c->waiter);
        c->waiter.pool = NULL;
        if (b) {
            /* Granted at the last moment. */
            backend_attach(b, c->w->base);
            c->be = b;
            prepare_step(c);
            return;
        }
        const cfg_env *e = c->route.env;
        log_warn("conn %u %s user=%s env=%s: no backend connection within %lld ms", c->id,
                 c->addr, c->user, e->name, e->pool.wait_timeout_ms);
        client_send_err(c, 1040, "08004",
                        "envproxy: too many connections to environment '%s': all %d backend "
                        "connections stayed busy for %lld ms",
                        e->name, e->pool.max, e->pool.wait_timeout_ms);
        if (c->job == JOB_LOGIN_DB)
            client_close_after_flush(c);
        else
            client_command_done(c);
        return;
    }
    case CL_RELAY:
        relay_timeout(c);
        return;
    case CL_CLOSING:
        closing_progress(c);
        return;
    case CL_IDLE: {
        /* The timer may be a statement's, left added when it ended (relay_send): the session
         * is closed only once it has idled for client_idle_timeout. */
        long long idle = c->cfg->client_idle_timeout_ms;
        if (idle <= 0)
            return;
        uint64_t now = now_ms();
        if (now < c->idle_since_ms + (uint64_t)idle) {
            client_timer_arm(c, now, (long long)(c->idle_since_ms + (uint64_t)idle - now));
            return;
        }
        log_info("conn %u %s user=%s: no command for %lld ms (client_idle_timeout); "
                 "disconnecting",
                 c->id, c->addr, c->user, idle);
        client_fail(c, 4031, "HY000",
                    "envproxy: the client was disconnected because of inactivity "
                    "(client_idle_timeout %lld ms)",
                    idle);
        return;
    }
    default:
        return;
    }
}

/* ---- input ------------------------------------------------------------------------------- */

static void handle_packet(client *c);
static void process_packets(client *c);

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    client_process_input(arg);
}

/* Whether the client's next packet may be read in the current state. */
static bool reading(const client *c)
{
    return c->state == CL_GREETING || c->state == CL_AUTH_SWITCH || c->state == CL_IDLE;
}

/* Cuts complete packets from the input and handles them, one command at a time. */
static void client_process_input(client *c)
{
    c->in_input = true;
    if (relay_reads_file(c))
        relay_file_input(c); /* the input is a LOAD DATA LOCAL INFILE file, not commands */
    process_packets(c);
    client_input_own(c);
    c->in_input = false;
    if (c->free_pending) {
        client_free(c);
        return;
    }
    if (c->state != CL_CLOSING && !reading(c) && !c->in_paused && !relay_reads_file(c) &&
        (long long)evbuffer_get_length(bufferevent_get_input(c->bev)) >
            c->cfg->max_pipelined_input) {
        /* A command runs and the client sends more than max_pipelined_input ahead: stop
         * reading (the socket's buffers then push back on the client) until it ends. */
        client_read_off(c);
        c->in_paused = true;
        log_debug("conn %u %s: %zu bytes sent ahead of a running command; reading paused",
                  c->id, c->addr, evbuffer_get_length(bufferevent_get_input(c->bev)));
    }
}

static void process_packets(client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (reading(c)) {
        /* Before login only small packets: a handshake response is a few hundred bytes. */
        bool login = c->state != CL_IDLE;
        long long max = login ? c->cfg->max_handshake_packet_size : c->cfg->max_packet_size;
        /* The bytes of a read lent by the worker (client_sock_read_cb) come first. */
        const uint8_t *lent = c->lent ? c->lent + c->lent_off : NULL;
        size_t avail = lent ? c->lent_len - c->lent_off : evbuffer_get_length(in);
        if (avail < PKT_HEADER)
            return;
        /* Most packets sit whole in the input's first chunk: they are read from there,
         * with one copy and one drain. */
        struct evbuffer_iovec first_chunk = {NULL, 0};
        uint8_t hb[PKT_HEADER];
        const uint8_t *h = hb;
        if (lent)
            h = lent;
        else if (evbuffer_peek(in, PKT_HEADER, NULL, &first_chunk, 1) == 1 &&
                 first_chunk.iov_len >= PKT_HEADER)
            h = first_chunk.iov_base;
        else
            evbuffer_copyout(in, hb, PKT_HEADER);
        size_t len = pkt_u24(h);
        uint8_t seq = h[3];
        if ((long long)((c->cmd_done ? 0 : c->cmd.len) + len) > max) {
            c->seq = (uint8_t)(seq + 1);
            if (login) {
                log_warn("conn %u %s: packet larger than max_handshake_packet_size (%lld "
                         "bytes) before login",
                         c->id, c->addr, max);
                atomic_fetch_add(&c->p->logins_refused, 1);
                client_fail(c, 1153, "08S01",
                            "envproxy: got a packet bigger than %lld bytes before login "
                            "(max_handshake_packet_size)",
                            max);
                return;
            }
            log_warn("conn %u %s: packet larger than max_packet_size (%lld bytes)", c->id,
                     c->addr, max);
            client_fail(c, 1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes");
            return;
        }
        if (avail < PKT_HEADER + len)
            return;
        if (c->cmd_done) {
            /* The previous command's payload is no longer needed. */
            pbuf_reset(&c->cmd);
            c->cmd_done = false;
        }
        bool first = c->cmd.len == 0;
        uint8_t want = first && c->state == CL_IDLE ? 0 : c->seq;
        if (seq != want) {
            log_warn("conn %u %s: packet out of order (sequence %u, expected %u)", c->id,
                     c->addr, seq, want);
            client_fail(c, 1156, "08S01", "Got packets out of order");
            return;
        }
        c->seq = (uint8_t)(seq + 1);
        pbuf_reserve(&c->cmd, len);
        if (lent) {
            memcpy(c->cmd.data + c->cmd.len, lent + PKT_HEADER, len);
            c->lent_off += PKT_HEADER + len;
        } else if (h != hb && first_chunk.iov_len - PKT_HEADER >= len) {
            memcpy(c->cmd.data + c->cmd.len, (const uint8_t *)first_chunk.iov_base + PKT_HEADER,
                   len);
            evbuffer_drain(in, PKT_HEADER + len);
        } else {
            evbuffer_drain(in, PKT_HEADER);
            evbuffer_remove(in, c->cmd.data + c->cmd.len, len);
        }
        c->cmd.len += len;
        if (len == PKT_MAX_PAYLOAD)
            continue; /* the payload goes on in the next packet */
        c->cmd_done = true; /* kept until the next packet: the relay sends it from here */
        handle_packet(c);
        if (c->state == CL_CLOSING)
            return;
    }
}

/* ---- idle transactions (limits.idle_transaction_timeout) ------------------------------- */

/* The timeout of a held connection inside a transaction, or 0 when none applies. */
static long long txn_timeout(const backend *b)
{
    if (!b || !(b->status & ST_IN_TRANS) || b->op != BOP_NONE)
        return 0;
    return b->pool->env->limits.idle_transaction_timeout_ms;
}

/* How long the held connection b has had nothing to do (b->idle_since_ms is set when a
 * command on it ends). */
static long long txn_idle(const backend *b, uint64_t now)
{
    return now > b->idle_since_ms ? (long long)(now - b->idle_since_ms) : 0;
}

/* The session went idle: the timer fires when the first idle-transaction timeout of the
 * connections it holds passes. */
/* Most statements run outside a held transaction: no event_del (and its lock) for them. */
static void txn_timer_stop(client *c)
{
    if (c->txn_timer_on) {
        evtimer_del(c->txn_timer);
        c->txn_timer_on = false;
    }
}

/* now: the clock when the caller read it, or 0 (read here once a held transaction needs
 * it). */
static void txn_timer_arm(client *c, uint64_t now)
{
    long long next = 0;
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        long long t = txn_timeout(c->held[i]);
        if (t <= 0)
            continue;
        if (!now)
            now = now_ms();
        long long idle = txn_idle(c->held[i], now);
        long long left = t > idle ? t - idle : 1;
        if (!next || left < next)
            next = left;
    }
    if (!next) {
        txn_timer_stop(c);
        return;
    }
    struct timeval tv = {.tv_sec = next / 1000, .tv_usec = (next % 1000) * 1000};
    evtimer_add(c->txn_timer, &tv);
    c->txn_timer_on = true;
}

/* A transaction idled too long: its backend session is closed, which makes the server roll
 * it back and let go of every lock it held (a ROLLBACK would keep LOCK TABLES, GET_LOCK and
 * the like). The client learns it from its next command. */
static void txn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    c->txn_timer_on = false; /* it fired: no longer added */
    if (c->state != CL_IDLE)
        return;
    uint64_t now = now_ms();
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        backend *b = c->held[i];
        long long t = txn_timeout(b);
        if (t <= 0 || txn_idle(b, now) < t)
            continue;
        const cfg_env *e = b->pool->env;
        log_info("conn %u %s user=%s env=%s: transaction idle for more than %lld ms "
                 "(idle_transaction_timeout): backend session closed, transaction rolled back",
                 c->id, c->addr, c->user, e->name, t);
        snprintf(c->txn_lost, sizeof(c->txn_lost), "%s", e->name);
        c->txn_lost_ms = t;
        client_drop_backend(c, b);
    }
    bool holds = false;
    for (int i = 0; i < CLIENT_MAX_HELD; i++)
        holds = holds || c->held[i];
    if (!holds) {
        /* What pinned the session (variables, temporary tables, locks) went with it. */
        c->pinned = false;
        c->pin_reason[0] = '\0';
        c->long_data_stmts = 0;
    }
    c->last_status &= (uint16_t)~ST_IN_TRANS;
    txn_timer_arm(c, 0);
}

/* Answers the command after a rolled-back idle transaction with the error that says so.
 * Returns false when there was none. */
static bool txn_lost_error(client *c)
{
    if (!c->txn_lost[0])
        return false;
    long long ms = c->txn_lost_ms;
    client_send_err(c, 1213, "40001",
                    "envproxy: environment '%s': the transaction was idle for more than %lld%s "
                    "(limits.idle_transaction_timeout) and was rolled back; its locks, "
                    "temporary tables and user variables are gone. Start it again",
                    c->txn_lost, ms % 1000 ? ms : ms / 1000, ms % 1000 ? " ms" : " s");
    c->txn_lost[0] = '\0';
    return true;
}

void client_command_done(client *c)
{
    uint64_t now = now_ms();
    if (c->be)
        c->be->idle_since_ms = now; /* before it may go back to the pool */
    stmt_exec_done(c);
    session_release(c);
    stmt_drop_pending(c);
    if (c->busy) {
        c->busy = false;
        atomic_fetch_sub(&c->p->busy_clients, 1);
    }
    c->state = CL_IDLE;
    local_ps_idle(c, now);
    c->job = JOB_NONE;
    c->job_words = 0;
    c->rl_warned = false;
    c->job_reads_diag = false;
    c->job_mode_changed = false;
    c->job_sets_tracking = false;
    c->no_reply = false;
    c->no_reply_stmt = NULL;
    c->be = NULL;
    c->stmt_be = NULL;
    c->rl_paused = false;
    c->binary_rows = false;
    c->rl_vdbs = false; /* an errored SHOW DATABASES must not add rows to a later result */
    free(c->infile_name);
    c->infile_name = NULL;
    c->infile_len = 0;
    c->rl_deadline_ms = 0;
    c->idle_since_ms = now;
    /* client_idle_timeout: the timer is added again only when it would fire after the idle
     * deadline (or not at all); an earlier firing finds the session idle and re-adds it for
     * what is left (client_timer_cb). */
    long long idle = c->cfg->client_idle_timeout_ms;
    if (idle > 0 && (!c->timer_due_ms || c->timer_due_ms > now + (uint64_t)idle))
        client_timer_arm(c, now, idle);
    if (c->in_paused) {
        c->in_paused = false;
        client_read_on(c);
    }
    txn_timer_arm(c, now); /* the command's end: idle since now */
    /* Pipelined commands already buffered: handle them from the loop, not from here. */
    if (!c->in_input && evbuffer_get_length(bufferevent_get_input(c->bev)) >= PKT_HEADER)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- accounts ---------------------------------------------------------------------------- */

/* Looks the user up again when the account store changed since the last look. Returns false
 * when the account is gone. */
static bool refresh_account(client *c)
{
    int gen = atomic_load(&c->p->acct_gen);
    if (c->acct_ref && c->acct_gen == gen)
        return c->acct != NULL;
    acct_ref *r = proxy_acct_get(c->p);
    if (c->acct_ref)
        proxy_acct_put(c->acct_ref);
    c->acct_ref = r;
    c->acct_gen = gen;
    c->acct = acct_find(r->snap, c->user);
    return c->acct != NULL;
}

/* Between commands, moves the session to the newest configuration (SIGHUP), so that the
 * replaced one can be freed once no session uses it. A session whose environment is gone
 * from the new configuration stays on the old one. */
static void refresh_config(client *c)
{
    config *cur = atomic_load(&c->p->cfg);
    if (cur == c->cfg)
        return;
    const cfg_env *e = NULL;
    if (c->env && !(e = config_find_env(cur, c->env->name)))
        return;
    config *next = proxy_cfg_get(c->p);
    if (next != cur)
        e = c->env ? config_find_env(next, c->env->name) : NULL;
    if (c->env && !e) {
        proxy_cfg_put(next);
        return;
    }
    c->env = e;
    proxy_cfg_put(c->cfg);
    c->cfg = next;
}

/* ---- authentication ---------------------------------------------------------------------- */

/* The MCP-over-HTTP door's tools log in with a ticket (http/mcp.c): a random password that
 * lives in the proxy's memory while the MCP session lasts. Such a session is audited as mcp. */
static bool mcp_ticket_login(client *c, const uint8_t *auth, size_t auth_len, bool sha2)
{
    if (!http_mcp_ticket_ok(c->user, c->scramble, auth, auth_len, sha2))
        return false;
    c->via = "mcp";
    return true;
}

static void login_succeeded(client *c);
static void authenticate(client *c, bool name_ok, const char *plugin_in, size_t plen_in,
                         const uint8_t *auth, size_t auth_len);

static void deny_login(client *c, bool used_password)
{
    atomic_fetch_add(&c->p->logins_refused, 1);
    throttle_failure(c->cfg, c->host, c->user);
    client_audit(c, "refused", -1, -1, "1045: Access denied", "login_failed");
    log_warn("conn %u %s: login failed for user '%s'", c->id, c->addr, c->user);
    client_fail(c, 1045, "28000", "Access denied for user '%s'@'%s' (using password: %s)",
                c->user, c->host, used_password ? "YES" : "NO");
}

/* Takes the user name of a handshake or COM_CHANGE_USER into c->user for lookups and
 * messages. Returns false for a name no account can have (longer than 64 bytes, control
 * characters, quotes): the login is then refused whatever the password, and the name is
 * never cut or altered into another account's. */
static bool take_user_name(client *c, const char *name, size_t len)
{
    bool ok = len >= 1 && len <= ROUTE_NAME_MAX;
    size_t ul = len > ROUTE_NAME_MAX ? ROUTE_NAME_MAX : len;
    memcpy(c->user, name, ul);
    c->user[ul] = '\0';
    c->user_len = (uint16_t)ul;
    for (size_t i = 0; i < ul; i++) {
        if (!isprint((unsigned char)c->user[i]) || c->user[i] == '\'') {
            c->user[i] = '?';
            ok = false;
        }
    }
    if (ok && !acct_valid_name(c->user))
        ok = false;
    if (!ok)
        log_warn("conn %u %s: user name of %zu bytes that no account can have ('%s%s')", c->id,
                 c->addr, len, c->user, len > ul ? "..." : "");
    return ok;
}

/* A login name "user@env" (for tools whose login form has no database field) selects the
 * environment: *len is cut before the '@' and *env points after it (NULL without one).
 * Account names never hold '@'. */
static void split_login_env(const char *user, size_t *len, const char **env, size_t *env_len)
{
    const char *at = memchr(user, '@', *len);
    *env = NULL;
    *env_len = 0;
    if (at) {
        *env = at + 1;
        *env_len = *len - (size_t)(*env - user);
        *len = (size_t)(at - user);
    }
}

/* The login database of a handshake or COM_CHANGE_USER: "db" / "db@env" as given, with the
 * environment of a login name "user@env" added where the database names none ("@env" alone
 * without a database). A name too long for any "db@env" is refused (ERR 1102, the client
 * closed), never cut. */
static bool take_login_db(client *c, const char *db, size_t len, const char *env,
                          size_t env_len)
{
    c->has_login_db = false;
    if ((!db || !len) && !env)
        return true;
    if (!db)
        len = 0;
    bool add_env = env && !(len && memchr(db, '@', len));
    size_t total = len + (add_env ? 1 + env_len : 0);
    if (total >= sizeof(c->login_db) || (len && memchr(db, 0, len)) ||
        (add_env && memchr(env, 0, env_len))) {
        log_warn("conn %u %s: login database name of %zu bytes refused", c->id, c->addr, total);
        client_fail(c, 1102, "42000",
                    "envproxy: incorrect database name: at most %d bytes (\"db@env\")",
                    (int)sizeof(c->login_db) - 1);
        return false;
    }
    if (len)
        memcpy(c->login_db, db, len);
    if (add_env) {
        c->login_db[len] = '@';
        memcpy(c->login_db + len + 1, env, env_len);
    }
    c->login_db[total] = '\0';
    c->has_login_db = true;
    return true;
}

/* The login throttle, before any credential is looked at (handshake and COM_CHANGE_USER).
 * Refuses (and closes) when the address or the account failed too often. */
static bool login_allowed(client *c)
{
    switch (throttle_blocked(c->cfg, c->host, c->user)) {
    case THROTTLE_OK:
        return true;
    case THROTTLE_HOST:
        atomic_fetch_add(&c->p->logins_refused, 1);
        log_warn("conn %u %s: login of '%s' refused: the address is blocked (login_throttle)",
                 c->id, c->addr, c->user);
        client_fail(c, 1129, "HY000",
                    "Host '%s' is blocked because of many failed logins; try again later",
                    c->host);
        return false;
    case THROTTLE_ACCOUNT:
        atomic_fetch_add(&c->p->logins_refused, 1);
        log_warn("conn %u %s: login of '%s' refused: the account is blocked (login_throttle)",
                 c->id, c->addr, c->user);
        client_fail(c, 3955, "HY000",
                    "Access denied for user '%s'@'%s': the account is blocked because of many "
                    "failed logins; try again later",
                    c->user, c->host);
        return false;
    }
    return true;
}

static void start_tls(client *c)
{
    /* From here the TLS filter reads the socket, through the socket bufferevent (bytes
     * already read wait in its input: those of a lent read are put there first). */
    client_input_own(c);
    if (c->rd_ev) {
        event_free(c->rd_ev);
        c->rd_ev = NULL;
    }
    SSL *ssl = SSL_new(c->p->tls_ctx);
    if (!ssl) {
        client_free(c);
        return;
    }
    struct bufferevent *tb = bufferevent_openssl_filter_new(
        c->w->base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!tb) {
        SSL_free(ssl);
        client_free(c);
        return;
    }
    /* The filter encrypts only while the socket's output holds less than this: what the
     * client does not take stays as plain bytes in the filter's output, where the relay's
     * back-pressure sees it (and its low-water callback fires when the client reads). */
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, TLS_SOCKET_OUT_MAX);
    c->bev = tb;
    c->tls = true;
    bufferevent_setcb(tb, client_read_cb, client_write_cb, client_event_cb, c);
    set_write_timeout(c);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
}


static void handle_handshake(client *c)
{
    pkt_handshake_response r;
    char err[160];
    if (pkt_parse_handshake_response(c->cmd.data, c->cmd.len, &r, err, sizeof(err))) {
        log_warn("conn %u %s: bad handshake: %s", c->id, c->addr, err);
        client_fail(c, 1043, "08S01", "Bad handshake");
        return;
    }
    if (r.ssl_request) {
        if (c->tls) {
            client_fail(c, 1043, "08S01", "Bad handshake");
            return;
        }
        start_tls(c);
        return;
    }
    c->caps = r.caps & SERVER_CAPS;
    c->ext_meta = (r.ext_caps & SERVER_EXT_CAPS) != 0;
    c->charset = r.charset;
    /* Dump programs get an error rather than a result cut to max_rows (relay.c), and no
     * virtual schemas in SHOW DATABASES (there is nothing in them to back up). */
    c->dump_client = r.program &&
                     ((r.program_len == 9 && memcmp(r.program, "mysqldump", 9) == 0) ||
                      (r.program_len == 12 && memcmp(r.program, "mariadb-dump", 12) == 0));
    bool cli = r.program && ((r.program_len == 5 && memcmp(r.program, "mysql", 5) == 0) ||
                             (r.program_len == 7 && memcmp(r.program, "mariadb", 7) == 0));
    c->cap_fails = c->dump_client || (cli && !(r.caps & CAP_INTERACTIVE));
    c->multi_stmt = (r.caps & CAP_MULTI_STATEMENTS) != 0;
    size_t user_len = r.user_len;
    const char *login_env;
    size_t login_env_len;
    split_login_env(r.user, &user_len, &login_env, &login_env_len);
    bool name_ok = take_user_name(c, r.user, user_len);
    if (!take_login_db(c, r.database, r.database_len, login_env, login_env_len))
        return;
    if (!login_allowed(c))
        return;
    if (c->cfg->tls_require && !c->tls) {
        log_warn("conn %u %s: refused: TLS is required", c->id, c->addr);
        client_fail(c, 3159, "HY000",
                    "Connections using insecure transport are prohibited: envproxy requires "
                    "TLS (tls.require)");
        return;
    }
    authenticate(c, name_ok, r.plugin, r.plugin_len, r.auth, r.auth_len);
}

/* Fills the scramble with fresh printable bytes, never '$'. */
static void new_scramble(client *c)
{
    RAND_bytes(c->scramble, sizeof(c->scramble));
    for (size_t i = 0; i < sizeof(c->scramble); i++) {
        uint8_t v = (uint8_t)(0x21 + c->scramble[i] % 94);
        c->scramble[i] = v == '$' ? '#' : v;
    }
}

/* Checks the client's answer for c->user (from the handshake or COM_CHANGE_USER): logs in,
 * refuses, or switches to mysql_native_password for another plugin or an empty answer. */
static void authenticate(client *c, bool name_ok, const char *plugin_in, size_t plen_in,
                         const uint8_t *auth, size_t auth_len)
{
    c->name_ok = name_ok;
    bool known = refresh_account(c) && name_ok;
    const char *plugin = plugin_in ? plugin_in : PLUGIN_NATIVE;
    size_t plen = plugin_in ? plen_in : strlen(PLUGIN_NATIVE);
    bool is_sha2 = plen == strlen(PLUGIN_SHA2) && memcmp(plugin, PLUGIN_SHA2, plen) == 0;
    bool is_native = plen == strlen(PLUGIN_NATIVE) && memcmp(plugin, PLUGIN_NATIVE, plen) == 0;
    /* An empty answer may come from a client whose plugin had no scramble to work with (it
     * chose another plugin than the greeting's): ask again below, with a switch. */
    if (auth_len == 0 || (auth_len == 1 && auth[0] == 0))
        is_sha2 = is_native = false;
    if (is_sha2) {
        if (!known || !(acct_verify_sha2(c->acct->sha256_stage2, c->scramble, auth, auth_len) ||
                        mcp_ticket_login(c, auth, auth_len, true))) {
            deny_login(c, auth_len > 0);
            return;
        }
        /* AuthMoreData: fast authentication succeeded. */
        pbuf b;
        pbuf_init(&b);
        size_t start = pkt_begin(&b);
        pbuf_u8(&b, 0x01);
        pbuf_u8(&b, 0x03);
        pkt_end(&b, start, &c->seq);
        client_send(c, &b);
        login_succeeded(c);
    } else if (is_native) {
        if (!known || !(acct_verify_native(c->acct->sha1_stage2, c->scramble, auth, auth_len) ||
                        mcp_ticket_login(c, auth, auth_len, false))) {
            deny_login(c, auth_len > 0);
            return;
        }
        login_succeeded(c);
    } else {
        /* Another plugin: switch to mysql_native_password with a fresh scramble. */
        new_scramble(c);
        pbuf b;
        pbuf_init(&b);
        pkt_build_auth_switch(&b, &c->seq, PLUGIN_NATIVE, c->scramble);
        client_send(c, &b);
        bool change_user = c->state != CL_GREETING && c->state != CL_AUTH_SWITCH;
        c->state = CL_AUTH_SWITCH;
        if (change_user) /* COM_CHANGE_USER: the handshake's deadline from here */
            set_timer(c, c->cfg->handshake_timeout_ms);
    }
}

/* COM_CHANGE_USER and COM_RESET_CONNECTION end the session's state: its connections are
 * reset and returned, its statements and session variables dropped. */
static void end_session_state(client *c)
{
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        if (c->held[i]) {
            backend_recycle(c->held[i]);
            c->held[i] = NULL;
            c->held_env[i] = -1;
        }
    }
    stmt_free_all(c);
    session_vars_clear(c->vars, &c->n_vars);
    c->txn_lost[0] = '\0'; /* a new session: nothing to report */
    txn_reset(c);
}

/* COM_CHANGE_USER: log in again as another (or the same) account, from a clean session. */
static void handle_change_user(client *c)
{
    preader r;
    const char *user, *db = NULL, *plugin = NULL;
    size_t user_len, db_len = 0, plugin_len = 0;
    const uint8_t *auth = NULL;
    size_t auth_len = 0;
    pr_init(&r, c->cmd.data + 1, c->cmd.len - 1);
    bool ok = pr_cstr(&r, &user, &user_len);
    if (ok && (c->caps & CAP_SECURE_CONNECTION)) {
        uint8_t n;
        ok = pr_u8(&r, &n) && pr_bytes(&r, n, &auth);
        auth_len = n;
    } else if (ok) {
        const char *a;
        ok = pr_cstr(&r, &a, &auth_len);
        auth = (const uint8_t *)a;
    }
    if (ok && pr_left(&r) > 0)
        ok = pr_cstr(&r, &db, &db_len);
    uint16_t charset = c->charset;
    if (ok && pr_left(&r) >= 2)
        ok = pr_u16(&r, &charset);
    if (ok && pr_left(&r) > 0 && (c->caps & CAP_PLUGIN_AUTH)) {
        const uint8_t *nul = memchr(r.p, 0, pr_left(&r));
        plugin = (const char *)r.p;
        plugin_len = nul ? (size_t)(nul - r.p) : pr_left(&r);
    }
    if (!ok) {
        client_fail(c, 1835, "08S01", "Malformed communication packet");
        return;
    }
    end_session_state(c); /* the old session ends here */
    const char *login_env;
    size_t login_env_len;
    split_login_env(user, &user_len, &login_env, &login_env_len);
    bool name_ok = take_user_name(c, user, user_len);
    if (!take_login_db(c, db, db_len, login_env, login_env_len))
        return;
    /* Two bytes here (one in the handshake): an id above 255 is one the proxy has no name
     * for, taken as unknown (the default character set), never cut to its low byte, which
     * names another character set (0x154 is not 0x54, big5_bin). */
    c->charset = charset > 0xFF ? 0 : (uint8_t)charset;
    c->acct_gen = -1; /* look the new name up */
    c->acct = NULL;
    log_info("conn %u %s: COM_CHANGE_USER to '%s'", c->id, c->addr, c->user);
    if (!login_allowed(c)) /* the same throttle as a new connection's login */
        return;
    authenticate(c, name_ok, plugin, plugin_len, auth, auth_len);
}

static void handle_auth_switch(client *c)
{
    bool known = c->acct != NULL && c->name_ok;
    if (!known ||
        !(acct_verify_native(c->acct->sha1_stage2, c->scramble, c->cmd.data, c->cmd.len) ||
          mcp_ticket_login(c, c->cmd.data, c->cmd.len, false))) {
        deny_login(c, c->cmd.len > 0);
        return;
    }
    login_succeeded(c);
}

static const char *charset_names[256];

static void charset_names_init(void)
{
    for (int nr = 0; nr < 256; nr++) {
        const MARIADB_CHARSET_INFO *cs = mariadb_get_charset_by_nr((unsigned)nr);
        if (!cs || !cs->csname)
            charset_names[nr] = "utf8mb4";
        else if (strcmp(cs->csname, "utf8mb3") == 0)
            charset_names[nr] = "utf8"; /* older servers know utf8mb3 as utf8; all take utf8 */
        else
            charset_names[nr] = cs->csname;
    }
}

/* The character set of a collation number (looked up once: this runs per statement). */
static const char *charset_name(uint8_t nr)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, charset_names_init);
    return charset_names[nr];
}

/* Moves the session to database db of environment e (the handshake's database, USE or
 * COM_INIT_DB). A real database is checked on a backend first (job JOB_LOGIN_DB or JOB_USE
 * finishes the move); no database, or a virtual schema, needs no backend. */
static void switch_to(client *c, const cfg_env *e, grant_level g, const char *db, job_kind job)
{
    if (!db || virtual_is_schema(db)) {
        c->env = e;
        c->has_db = db != NULL;
        if (db)
            snprintf(c->db, sizeof(c->db), "%s", db);
        client_send_ok(c, ST_AUTOCOMMIT);
        client_command_done(c);
        return;
    }
    memset(&c->route, 0, sizeof(c->route));
    c->route.env = e;
    c->route.grant = g;
    c->route.read_only = e->access != ACCESS_READ_WRITE || g != GRANT_WRITE;
    c->job_db_len = (uint16_t)route_copy_name(c->job_db, sizeof(c->job_db), db);
    c->job_has_db = true;
    c->job = job;
    client_start_job(c);
}

/* Authenticated: settle the session's environment and database, then send OK. */
static void login_succeeded(client *c)
{
    client_timer_stop(c);
    const config *cfg = c->cfg;
    throttle_success(c->host, c->user);
    if (c->counted_user[0]) { /* COM_CHANGE_USER: the old account's place is given back */
        proxy_acct_gone(c->counted_user);
        c->counted_user[0] = '\0';
    }
    if (strcmp(c->via, "mysql") == 0) { /* HTTP and MCP sessions have their own bounds */
        if (!proxy_acct_admit(cfg, c->user)) {
            log_warn("conn %u %s user=%s: refused: the account has %d connections already "
                     "(max_connections_per_account)",
                     c->id, c->addr, c->user, cfg->max_connections_per_account);
            client_fail(c, 1203, "42000",
                        "User '%s' already has more than 'max_connections_per_account' (%d) "
                        "active connections to envproxy",
                        c->user, cfg->max_connections_per_account);
            return;
        }
        snprintf(c->counted_user, sizeof(c->counted_user), "%s", c->user);
    }
    c->last_status = ST_AUTOCOMMIT;
    c->pinned = false;
    c->env = route_initial_env(cfg, c->acct);
    c->has_db = false;
    if (c->env && c->env->database) {
        snprintf(c->db, sizeof(c->db), "%s", c->env->database);
        c->has_db = true;
    }
    log_info("conn %u %s user=%s: logged in%s (env=%s)", c->id, c->addr, c->user,
             c->tls ? " with TLS" : "", c->env ? c->env->name : "-");
    local_unregister(c); /* again after COM_CHANGE_USER */
    local_register(c);
    if (!c->has_login_db) {
        client_send_ok(c, ST_AUTOCOMMIT);
        client_command_done(c); /* idle (also after COM_CHANGE_USER) */
        return;
    }
    route_target t;
    char err[200];
    if (route_parse_target(c->login_db, strlen(c->login_db), &t, err, sizeof(err))) {
        client_fail(c, 1049, "42000", "envproxy: %s", err);
        return;
    }
    const char *env_name = t.has_env ? t.env : c->env ? c->env->name : NULL;
    grant_level g;
    const cfg_env *e = env_name ? route_env_for(cfg, c->acct, env_name, &g) : NULL;
    if (!e) {
        log_warn("conn %u %s user=%s: no grant for environment '%s'", c->id, c->addr, c->user,
                 env_name ? env_name : "-");
        client_fail(c, 1044, "42000", "Access denied for user '%s'@'%s' to environment '%s'",
                    c->user, c->host, env_name ? env_name : "(none)");
        return;
    }
    switch_to(c, e, g, t.has_db ? t.db : e->database, JOB_LOGIN_DB);
}

/* ---- internal sessions (the HTTP front door) ---------------------------------------------- */

/* What an internal session announces: the protocol its peer (http/sql.c) reads, with EOF
 * packets, without multi-statements, LOCAL INFILE or compression. */
#define INTERNAL_CAPS                                                                             \
    (CAP_LONG_PASSWORD | CAP_LONG_FLAG | CAP_PROTOCOL_41 | CAP_TRANSACTIONS |                   \
     CAP_SECURE_CONNECTION | CAP_MULTI_RESULTS | CAP_PS_MULTI_RESULTS | CAP_PLUGIN_AUTH)

void client_accept_internal(worker *w, int fd, const internal_login *login)
{
    struct sockaddr_storage none;
    memset(&none, 0, sizeof(none));
    none.ss_family = AF_UNSPEC;
    client *c = client_new(w, fd, (const struct sockaddr *)&none);
    snprintf(c->addr, sizeof(c->addr), "%s", login->addr);
    c->addr_len = (uint16_t)strlen(c->addr);
    snprintf(c->host, sizeof(c->host), "%s", login->host);
    c->via = strcmp(login->via, "mcp") == 0 ? "mcp" : "http";
    snprintf(c->user, sizeof(c->user), "%s", login->user);
    c->user_len = (uint16_t)strlen(c->user);
    c->caps = INTERNAL_CAPS;
    c->charset = 45; /* utf8mb4_general_ci: JSON is UTF-8 */
    c->multi_stmt = false;
    c->has_login_db = login->login_db[0] != '\0';
    snprintf(c->login_db, sizeof(c->login_db), "%s", login->login_db);
    c->seq = 0;
    if (!refresh_account(c)) {
        /* The account went between the front door's check and now. */
        client_fail(c, 1045, "28000", "Access denied for user '%s'@'%s' (using password: YES)",
                    c->user, c->host);
        return;
    }
    login_succeeded(c);
}

/* ---- commands ---------------------------------------------------------------------------- */

static void handle_command(client *c);

static void handle_packet(client *c)
{
    switch (c->state) {
    case CL_GREETING:
        handle_handshake(c);
        break;
    case CL_AUTH_SWITCH:
        handle_auth_switch(c);
        break;
    case CL_IDLE:
        handle_command(c);
        break;
    default:
        break;
    }
}

/* USE / CMD_INIT_DB / the login database: name is "db", "db@env" or "@env". */
static void handle_use(client *c, const char *name, size_t len, const route_hint *h)
{
    route_target t;
    char err[200];
    if (c->dump_listed && memchr(name, '@', len)) {
        /* A dump of every database goes through the names SHOW DATABASES gave it: a server's
         * database called `shop@dev` would be read as shop in dev (dumped from there under a
         * prod name, or refused halfway), `a@b` as environment b. */
        int n = len > 64 ? 64 : (int)len;
        const char *env = c->env ? c->env->name : "ENV";
        client_send_err(c, 1105, "HY000",
                        "envproxy: a dump of every database cannot take `%.*s`: envproxy reads "
                        "'@' in a database name as an environment; leave it out "
                        "(--ignore-database=%.*s) and dump it alone as %.*s@%s "
                        "(see \"Backups\" in the README)",
                        n, name, n, name, n, name, env);
        client_command_done(c);
        return;
    }
    if (route_parse_target(name, len, &t, err, sizeof(err))) {
        client_send_err(c, 1049, "42000", "envproxy: %s", err);
        client_command_done(c);
        return;
    }
    const char *env_name = t.has_env ? t.env
                           : h && h->present && h->n_envs == 1 ? h->envs[0]
                           : c->env ? c->env->name : NULL;
    grant_level g;
    const cfg_env *e = env_name ? route_env_for(c->cfg, c->acct, env_name, &g) : NULL;
    if (!e) {
        client_send_err(c, 1044, "42000", "Access denied for user '%s'@'%s' to environment '%s'",
                        c->user, c->host, env_name ? env_name : "(none)");
        client_command_done(c);
        return;
    }
    if (!txn_may_move(c, e))
        return;
    switch_to(c, e, g, t.has_db ? t.db : e->database, JOB_USE);
}

bool client_parse_hint(client *c, const char *sql, size_t len, route_hint *h)
{
    char err[256];
    if (route_parse_hint(sql, len, h, err, sizeof(err)) == 0)
        return true;
    client_send_err(c, 1064, "42000", "envproxy: %s", err);
    client_command_done(c);
    return false;
}

/* The account lost its grant on the environment the statement was for, where the session
 * holds state (a transaction, locks): it could not end it there any more, not even with a
 * ROLLBACK, and held its locks until it left. The connection goes (the server rolls back),
 * and note says so for the refusal. */
static void drop_denied_state(client *c, const route_hint *h, char *note, size_t cap)
{
    const char *name = h && h->present && h->n_envs == 1 ? h->envs[0]
                       : c->env                          ? c->env->name
                                                         : NULL;
    const cfg_env *e = name ? config_find_env(c->cfg, name) : NULL;
    backend *b = e ? client_held(c, env_index(c->p, e)) : NULL;
    note[0] = '\0';
    if (b && b->op == BOP_NONE && client_session_has_state(c, b))
        client_lose_backend(c, b, note, cap);
}

bool client_resolve(client *c, const route_hint *h)
{
    char err[256];
    int code = route_resolve(c->cfg, c->acct, c->env ? c->env->name : NULL,
                             c->has_db ? c->db : NULL, h, &c->route, err, sizeof(err));
    if (code) {
        log_info("conn %u %s user=%s: %s", c->id, c->addr, c->user, err);
        char note[200];
        drop_denied_state(c, h, note, sizeof(note));
        client_send_err(c, (uint16_t)code, "42000", "%s%s", err, note);
        client_command_done(c);
        return false;
    }
    c->job_has_db = c->route.db != NULL && !virtual_is_schema(c->route.db);
    if (c->job_has_db)
        c->job_db_len = (uint16_t)route_copy_name(c->job_db, sizeof(c->job_db), c->route.db);
    c->job_moves_session = !(h && h->present && (h->n_envs || h->has_db));
    return true;
}

/* The offset just past words[0..n) at the start of s (any case, white space before each),
 * or SIZE_MAX when s does not start so. */
static size_t leading_words(const char *s, size_t len, const char *const *words, int n)
{
    size_t i = 0;
    for (int w = 0; w < n; w++) {
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        size_t k = strlen(words[w]);
        if (i + k > len || strncasecmp(s + i, words[w], k) != 0)
            return SIZE_MAX;
        i += k;
    }
    return i;
}

/* True for exactly `SHOW WARNINGS` (any case and spacing, an optional ';'). */
static bool is_show_warnings(const char *s, size_t len)
{
    static const char *const words[] = {"show", "warnings"};
    size_t i = leading_words(s, len, words, 2);
    if (i == SIZE_MAX)
        return false;
    while (i < len && (isspace((unsigned char)s[i]) || s[i] == ';'))
        i++;
    return i == len;
}

/* True for a statement that reads the diagnostics area: SHOW WARNINGS, SHOW ERRORS, SHOW
 * COUNT(*) WARNINGS|ERRORS, GET [CURRENT|STACKED] DIAGNOSTICS. */
static bool reads_diagnostics(const char *s, size_t len)
{
    static const char *const show[] = {"show"}, *const get[] = {"get"};
    size_t i = leading_words(s, len, show, 1);
    if (i == SIZE_MAX && (i = leading_words(s, len, get, 1)) == SIZE_MAX)
        return false;
    if (i == len || !isspace((unsigned char)s[i]))
        return false;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    static const char *const next[] = {"warnings",    "errors",  "count",
                                       "diagnostics", "current", "stacked"};
    for (size_t k = 0; k < sizeof(next) / sizeof(next[0]); k++)
        if (leading_words(s + i, len - i, &next[k], 1) != SIZE_MAX)
            return true;
    return false;
}

/* How a dump program asks for a table's triggers (unless --skip-triggers): mariadb-dump
 * reads INFORMATION_SCHEMA.TRIGGERS, mysqldump sends SHOW TRIGGERS. */
static bool is_show_triggers(const char *s, size_t len)
{
    static const char is[] = "INFORMATION_SCHEMA.TRIGGERS";
    const size_t isn = sizeof(is) - 1;
    for (size_t k = 0; k + isn <= len; k++)
        if ((s[k] | 0x20) == 'i' && strncasecmp(s + k, is, isn) == 0)
            return true;
    static const char *const words[] = {"show", "triggers"};
    size_t i = leading_words(s, len, words, 2);
    if (i == SIZE_MAX)
        return false;
    return i == len || isspace((unsigned char)s[i]) || s[i] == ';';
}

/* SHOW FUNCTION STATUS / SHOW PROCEDURE STATUS (mariadb-dump --routines lists them so). */
static bool is_show_routines(const char *s, size_t len)
{
    static const char *const words[] = {"show", NULL, "status"};
    size_t i = 0;
    for (int w = 0; w < 3; w++) {
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        size_t n;
        if (words[w]) {
            n = strlen(words[w]);
            if (i + n > len || strncasecmp(s + i, words[w], n) != 0)
                return false;
        } else if (i + 8 <= len && strncasecmp(s + i, "function", 8) == 0) {
            n = 8;
        } else if (i + 9 <= len && strncasecmp(s + i, "procedure", 9) == 0) {
            n = 9;
        } else {
            return false;
        }
        i += n;
        if (i < len && !isspace((unsigned char)s[i]) && s[i] != ';')
            return false;
    }
    return true;
}

/* A dump program's trigger query where the backend account has the TRIGGER privilege
 * nowhere (an account that changes nothing never has it): the server then shows it no
 * trigger at all, so the dump would come out without them and exit 0. Likewise its routine
 * listing where the account may not read mysql.proc (the server then lists none). Refused,
 * saying how to dump knowingly without them or what to grant. */
static bool dump_triggers_unreadable(client *c, const char *sql, size_t len)
{
    if (!c->dump_client || !c->route.env)
        return false;
    bool triggers = is_show_triggers(sql, len);
    if (!triggers && !is_show_routines(sql, len))
        return false;
    health_view v;
    health_get(&c->p->health[env_index(c->p, c->route.env)], &v);
    if (!triggers) {
        if (v.reads_routines != 0)
            return false;
        client_send_err(c, 1105, "HY000",
                        "envproxy: environment '%s' is read through a backend account that may "
                        "not read mysql.proc, to which the server lists no stored routine: the "
                        "dump would leave every routine out; grant it SELECT ON mysql.proc, or "
                        "dump without --routines (see \"Backups\" in the README)",
                        c->route.env->name);
        client_command_done(c);
        return true;
    }
    if (v.reads_triggers != 0)
        return false;
    client_send_err(c, 1105, "HY000",
                    "envproxy: environment '%s' is read through a backend account without the "
                    "TRIGGER privilege, to which the server shows no trigger: the dump would "
                    "leave every trigger out; dump with --skip-triggers to do so knowingly "
                    "(see \"Backups\" in the README)",
                    c->route.env->name);
    client_command_done(c);
    return true;
}

static void query_rest(client *c, route_hint *h, int words);

bool client_charset_readable(client *c)
{
    static const char *const cs_vars[] = {"character_set_client", "character_set_connection",
                                          "collation_connection"};
    if (sqlpolicy_charset(charset_name(c->charset)) == SQL_CS_UNSUPPORTED)
        return false;
    for (int i = 0; i < c->n_vars; i++)
        for (size_t k = 0; k < sizeof(cs_vars) / sizeof(cs_vars[0]); k++)
            if (strcasecmp(c->vars[i].name, cs_vars[k]) == 0 &&
                sqlpolicy_charset(c->vars[i].value) == SQL_CS_UNSUPPORTED)
                return false;
    return true;
}

/* LOAD DATA LOCAL INFILE in a writable session: keeps the file the statement names, the
 * only one a backend may have from the client (relay.c). Returns false when refused (the
 * client was answered). */
static bool take_infile_name(client *c, const char *sql, size_t len)
{
    char name[4096];
    size_t n;
    int ll = rewrite_load_local_file(sql, len, name, sizeof(name), &n);
    if (ll == LL_NONE)
        return true;
    if (ll == LL_UNREADABLE) {
        client_send_err(c, 1148, "42000",
                        "envproxy: LOAD DATA LOCAL INFILE works through envproxy as a statement "
                        "of its own that names its file in a plain single-quoted literal (no "
                        "escapes or quotes in the name, no character set prefix, no executable "
                        "comment, at most %zu bytes)",
                        sizeof(name) - 1);
        client_command_done(c);
        return false;
    }
    if (!(c->caps & CAP_LOCAL_FILES)) {
        /* As the server answers a client without the capability, before any file moves. */
        client_send_err(c, 1148, "42000",
                        "envproxy: LOAD DATA LOCAL INFILE needs a client that allows it (mariadb "
                        "--local-infile=1, PyMySQL local_infile=True, MySQLdb local_infile=1)");
        client_command_done(c);
        return false;
    }
    c->infile_name = strndup(name, n);
    if (!c->infile_name)
        abort();
    c->infile_len = n;
    return true;
}

void client_handle_query(client *c)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    route_hint h;
    if (!client_parse_hint(c, sql, len, &h))
        return;
    /* Named queries (queries_sql.c): answered, or CALL rewritten into c->cmd. */
    int nq = queries_statement(c, &h, sql, len);
    if (nq == 1)
        return;
    if (nq == 2) {
        sql = (const char *)c->cmd.data + 1;
        len = c->cmd.len - 1;
        if (!client_parse_hint(c, sql, len, &h))
            return;
    }
    if (!client_rewrite_schemas(c, &h))
        return;
    sql = (const char *)c->cmd.data + 1; /* the text may have been rewritten */
    len = c->cmd.len - 1;
    if (!(h.all_envs || h.n_envs > 1 || h.n_compare) && local_answer(c, sql + h.end, len - h.end))
        return;
    if (!client_rewrite_users(c, &h))
        return;
    sql = (const char *)c->cmd.data + 1;
    len = c->cmd.len - 1;
    if (virtual_statement(c, &h, sql, len))
        return;
    char name[2 * ROUTE_NAME_MAX + 2], err[256];
    int use = route_parse_use(sql + h.end, len - h.end, name, sizeof(name), err, sizeof(err));
    if (use < 0) {
        client_send_err(c, 1064, "42000", "envproxy: %s", err);
        client_command_done(c);
        return;
    }
    if (use > 0) {
        handle_use(c, name, strlen(name), &h);
        return;
    }
    query_rest(c, &h, 0);
}

/* Serves c->cmd, a COM_QUERY, from txn_intercept() on (client_handle_query). words is 1 +
 * txn_words_kind() of the text, or 0: a text in plain words is BEGIN, START TRANSACTION,
 * COMMIT or ROLLBACK, which no step below but txn_intercept() and the routing answers
 * (SHOW WARNINGS and SHOW DATABASES start with SHOW, the SCHEMATA rewrite and list with
 * SELECT, a file upload with LOAD): those steps are left out for it. */
static void query_rest(client *c, route_hint *h, int words)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    if (words ? txn_intercept_kind(c, h, sql + h->end, len - h->end, words - 1)
              : txn_intercept(c, h, sql + h->end, len - h->end))
        return;
    long long truncated = c->truncated_to;
    c->truncated_to = 0;
    c->job_reads_diag = !words && reads_diagnostics(sql + h->end, len - h->end);
    if (truncated && !words && is_show_warnings(sql + h->end, len - h->end)) {
        char n[32], msg[160];
        snprintf(n, sizeof(n), "%d", 1105);
        snprintf(msg, sizeof(msg), "envproxy: the result was truncated to %lld rows (max_rows)",
                 truncated);
        static const result_col cols[] = {{"Level", PKT_TYPE_VAR_STRING},
                                          {"Code", PKT_TYPE_LONG},
                                          {"Message", PKT_TYPE_VAR_STRING}};
        const char *cells[] = {"Note", n, msg};
        result_send(c, cols, 3, cells, 1, 0);
        client_command_done(c);
        return;
    }
    free(c->rl_vdbs_like);
    c->rl_vdbs_like = NULL;
    if (c->dump_client && !words && !c->dump_listed) {
        /* mariadb-dump --all-databases: the names it USEs next are the server's (handle_use). */
        char *like = NULL;
        c->dump_listed = virtual_is_show_databases(sql + h->end, len - h->end, &like);
        free(like);
    }
    c->rl_vdbs = !words && !c->dump_client &&
                 (virtual_is_show_databases(sql + h->end, len - h->end, &c->rl_vdbs_like) ||
                  rewrite_is_schemata_list(sql + h->end, len - h->end));
    if (!client_resolve(c, h))
        return;
    if (!words && dump_triggers_unreadable(c, sql + h->end, len - h->end))
        return;
    if (!words && !c->rl_vdbs && !client_rewrite_schemata(c, h))
        return;
    sql = (const char *)c->cmd.data + 1;
    len = c->cmd.len - 1;
    if (!words && !c->route.read_only && !take_infile_name(c, sql + h->end, len - h->end))
        return; /* read-only sessions refuse LOAD DATA as any write (the policy check) */
    /* The policy check waits for the backend connection: how SQL is read depends on that
     * session's sql_mode (prepare_step). */
    c->job = JOB_QUERY;
    c->rl = RL_FIRST;
    c->job_words = words;
    client_start_job(c);
}

void client_handle_txn_words(client *c, int kind)
{
    /* What client_handle_query's first steps leave of such a text: no routing hint (it has
     * no comment), no named query (no CALL, SELECT or __queries), no rewrite (no '@', no
     * "user"), no local or virtual answer (no KILL, SELECT, SHOW, __envs, __compare), not
     * USE. */
    route_hint h;
    memset(&h, 0, sizeof(h));
    query_rest(c, &h, kind + 1);
}

static void handle_reset_connection(client *c)
{
    end_session_state(c);
    c->pinned = false;
    c->last_status = ST_AUTOCOMMIT;
    c->env = route_initial_env(c->cfg, c->acct);
    c->has_db = false;
    if (c->env && c->env->database) {
        snprintf(c->db, sizeof(c->db), "%s", c->env->database);
        c->has_db = true;
    }
    client_send_ok(c, ST_AUTOCOMMIT);
    client_command_done(c);
}

static void handle_command(client *c)
{
    if (c->cmd.len == 0) {
        client_fail(c, 1047, "08S01", "envproxy: empty command packet");
        return;
    }
    uint8_t cmd = c->cmd.data[0];
    if (cmd == CMD_QUIT) {
        client_free(c);
        return;
    }
    /* c->timer stays added (client_idle_timeout, or the last statement's deadline): a firing
     * while the command runs finds its own state's deadline (client_timer_cb). */
    refresh_config(c);
    if (!refresh_account(c)) {
        client_fail(c, 1045, "28000", "Access denied for user '%s'@'%s': the account was removed",
                    c->user, c->host);
        return;
    }
    if (atomic_load(&c->p->draining)) {
        client_send_err(c, 1053, "08S01", "Server shutdown in progress");
        client_close_after_flush(c);
        return;
    }
    txn_timer_stop(c);
    c->state = CL_PREPARE; /* busy until client_command_done() */
    if (!c->busy) {
        c->busy = true;
        atomic_fetch_add(&c->p->busy_clients, 1);
    }
    local_ps_begin(c, cmd);
    /* After an idle transaction was rolled back, the next command that runs something gets
     * the error instead (a COMMIT must not look like it saved anything). Commands without a
     * response, a ping, and those that start a new session anyway go on. */
    if (cmd != CMD_STMT_CLOSE && cmd != CMD_STMT_SEND_LONG_DATA && cmd != CMD_PING &&
        cmd != CMD_CHANGE_USER && cmd != CMD_RESET_CONNECTION && txn_lost_error(c)) {
        client_command_done(c);
        return;
    }
    switch (cmd) {
    case CMD_PING:
        client_send_ok(c, ST_AUTOCOMMIT);
        client_command_done(c);
        break;
    case CMD_QUERY:
        client_handle_query(c);
        break;
    case CMD_INIT_DB:
        handle_use(c, (const char *)c->cmd.data + 1, c->cmd.len - 1, NULL);
        break;
    case CMD_FIELD_LIST:
    case CMD_STATISTICS:
        if (!client_resolve(c, NULL))
            return;
        c->job = JOB_QUERY;
        c->rl = cmd == CMD_FIELD_LIST ? RL_FIELDS : RL_ONE;
        client_start_job(c);
        break;
    case CMD_CHANGE_USER:
        handle_change_user(c);
        break;
    case CMD_PROCESS_KILL:
        if (c->cmd.len < 5) {
            client_send_err(c, 1835, "HY000", "Malformed communication packet");
            client_command_done(c);
        } else {
            local_kill(c, pkt_u32(c->cmd.data + 1), false);
        }
        break;
    case CMD_SET_OPTION:
        if (c->cmd.len != 3 || pkt_u16(c->cmd.data + 1) > 1) {
            client_send_err(c, 1047, "08S01", "Unknown command");
        } else {
            c->multi_stmt = pkt_u16(c->cmd.data + 1) == 0;
            pbuf b;
            pbuf_init(&b);
            pkt_build_eof(&b, &c->seq, c->caps, 0, ST_AUTOCOMMIT);
            client_send(c, &b);
        }
        client_command_done(c);
        break;
    case CMD_RESET_CONNECTION:
        handle_reset_connection(c);
        break;
    case CMD_STMT_PREPARE:
    case CMD_STMT_EXECUTE:
    case CMD_STMT_CLOSE:
    case CMD_STMT_RESET:
    case CMD_STMT_SEND_LONG_DATA:
    case CMD_STMT_FETCH:
        stmt_command(c, cmd);
        break;
    default:
        client_send_err(c, 1047, "08S01", "Unknown command (0x%02x)", cmd);
        client_command_done(c);
        break;
    }
}

/* ---- backend connections for a command ---------------------------------------------------- */

static int held_slot(client *c, int env)
{
    for (int i = 0; i < CLIENT_MAX_HELD; i++)
        if (c->held[i] && c->held_env[i] == env)
            return i;
    return -1;
}

backend *client_held(client *c, int env)
{
    int slot = held_slot(c, env);
    return slot >= 0 ? c->held[slot] : NULL;
}

static void hold(client *c, backend *b)
{
    int env = b->pool->index;
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        if (!c->held[i]) {
            c->held[i] = b;
            c->held_env[i] = env;
            return;
        }
    }
    /* client_start_job made room (held_room) before it took b, and slots only empty while
     * the session waits for it: this is a bug, said loudly. */
    log_error("conn %u user=%s: no free slot to hold a connection to env %s; the one to env "
              "%s is given back",
              c->id, c->user, b->pool->env->name, c->held[0]->pool->env->name);
    backend_recycle(c->held[0]);
    c->held[0] = b;
    c->held_env[0] = env;
}

/* Makes room to hold one more connection: a slot is free, or a held connection whose
 * session has no state there goes back to the pool (its carried variables are set again
 * wherever the session goes next). Returns false when every held connection has state
 * (a transaction, temporary tables, ...): giving one back would lose it silently. */
static bool held_room(client *c)
{
    for (int i = 0; i < CLIENT_MAX_HELD; i++)
        if (!c->held[i])
            return true;
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        backend *b = c->held[i];
        if (b->op != BOP_NONE || client_session_has_state(c, b))
            continue;
        c->held[i] = NULL;
        c->held_env[i] = -1;
        if (c->be == b)
            c->be = NULL;
        backend_recycle(b);
        return true;
    }
    return false;
}

void client_drop_backend(client *c, backend *b)
{
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        if (c->held[i] == b) {
            c->held[i] = NULL;
            c->held_env[i] = -1;
        }
    }
    if (c->be == b)
        c->be = NULL;
    txn_backend_gone(c, b);
    pool_discard(b->pool, b);
}

/* autocommit off alone is not state: it is a carried variable, set again on the next
 * connection; the transaction it opens with the first statement is (ST_IN_TRANS). */
bool client_session_has_state(client *c, backend *b)
{
    return c->pinned || c->long_data_stmts > 0 || b->dirty || (b->status & ST_IN_TRANS);
}

bool client_lose_backend(client *c, backend *b, char *note, size_t cap)
{
    bool state = client_session_has_state(c, b);
    const char *why = b->status & ST_IN_TRANS
                          ? (b->status & ST_AUTOCOMMIT ? "a transaction"
                                                       : "a transaction, autocommit off")
                      : c->pinned                ? c->pin_reason
                      : c->long_data_stmts > 0   ? "long data of a prepared statement"
                                                 : "session variables";
    note[0] = '\0';
    if (state) {
        snprintf(note, cap,
                 "; the session's state there (%s) is gone: a transaction not committed was "
                 "rolled back and the session was reset",
                 why);
        log_warn("conn %u %s user=%s env=%s: backend connection %lu lost with session state "
                 "(%s); the session is reset",
                 c->id, c->addr, c->user, b->pool->env->name, b->thread_id, why);
    }
    client_drop_backend(c, b);
    if (!state)
        return false;
    /* As a new server session starts: no transaction, default variables (the carried ones
     * included: autocommit is on again), no pins; the other connections are reset too, so
     * that nothing of the old session survives anywhere. Prepared statements stay: they are
     * the proxy's, prepared again where they next run. */
    int kept_txn = -1;
    for (int i = 0; i < CLIENT_MAX_HELD; i++) {
        backend *o = c->held[i];
        if (!o || o == c->be)
            continue;
        if ((o->status & ST_IN_TRANS) && o->op == BOP_NONE) {
            /* A transaction in another environment (a routing hint opened it): rolled back
             * with the rest, but the client, told of this environment only, may go on to
             * COMMIT it there. The connection is closed and stays held: its next statement
             * fails as after a restart (2013, the transaction named), never an OK. */
            backend_unwatch(o);
            if (o->fd >= 0)
                shutdown(o->fd, SHUT_RDWR);
            kept_txn = c->held_env[i];
            continue;
        }
        backend_recycle(o);
        c->held[i] = NULL;
        c->held_env[i] = -1;
    }
    stmt_forget_long_data(c);
    session_vars_clear(c->vars, &c->n_vars);
    c->pinned = false;
    c->pin_reason[0] = '\0';
    c->last_status = ST_AUTOCOMMIT;
    txn_reset(c);
    c->txn_env = kept_txn; /* where COMMIT and ROLLBACK go, to be told */
    return true;
}

/* The command cannot run: tell the client and move on (or close, for the login). */
static void job_failed(client *c)
{
    if (c->job == JOB_LOGIN_DB)
        client_close_after_flush(c);
    else
        client_command_done(c);
}

static void connect_done(backend *b, int rc, void *arg)
{
    client *c = arg;
    const cfg_env *e = b->pool->env;
    if (rc) {
        atomic_fetch_add(&b->pool->connect_errors, 1);
        log_warn("env %s: cannot connect to %s:%d: %s", e->name, e->host, e->port, b->err_msg);
        client_send_err(c, 2003, "HY000", "envproxy: environment '%s' is unreachable: %s",
                        e->name, b->err_msg);
        health_note(&c->p->health[b->pool->index], false, b->err_msg);
        c->be = NULL;
        pool_discard(b->pool, b);
        job_failed(c);
        return;
    }
    health_note(&c->p->health[b->pool->index], true, NULL);
    proxy_note_version(c->p, e, mysql_get_server_info(b->mysql));
    log_debug("env %s: new backend connection %lu", e->name, b->thread_id);
    hold(c, b);
    prepare_step(c);
}

static void open_backend(client *c, pool *pl)
{
    backend *b = backend_new(pl);
    c->be = b;
    c->state = CL_PREPARE;
    backend_connect(b, c->w->base, connect_done, c);
}

static void client_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    client *c = arg;
    if (c->state != CL_WAIT_POOL)
        return;
    pool *pl = c->waiter.pool;
    pthread_mutex_lock(&pl->mu);
    pw_state st = c->waiter.state;
    backend *b = c->waiter.granted;
    c->waiter.state = PW_NONE;
    c->waiter.granted = NULL;
    pthread_mutex_unlock(&pl->mu);
    client_timer_stop(c);
    if (st == PW_GRANTED) {
        backend_attach(b, c->w->base);
        hold(c, b);
        c->be = b;
        c->state = CL_PREPARE;
        prepare_step(c);
    } else if (st == PW_SLOT) {
        open_backend(c, pl);
    }
}

void client_start_job(client *c)
{
    proxy *p = c->p;
    int env = env_index(p, c->route.env);
    int slot = held_slot(c, env);
    c->state = CL_PREPARE;
    if (slot >= 0) {
        c->be = c->held[slot];
        if (backend_idle_dead(c->be, c->w->base)) {
            /* The server closed it while we held it (restart, wait_timeout, a connection
             * closed after a statement it did not stop): start over on another, but never
             * silently when the session had state there. */
            log_info("conn %u %s user=%s env=%s: backend connection was closed; reconnecting",
                     c->id, c->addr, c->user, c->route.env->name);
            char note[200];
            if (client_lose_backend(c, c->be, note, sizeof(note))) {
                client_send_err(c, 2013, "HY000",
                                "envproxy: lost the connection to environment '%s' (it was "
                                "closed)%s",
                                c->route.env->name, note);
                job_failed(c);
                return;
            }
        } else {
            prepare_step(c);
            return;
        }
    }
    if (!held_room(c)) {
        client_send_err(c, 1105, "HY000",
                        "envproxy: this session holds state (%s) in %d environments, the most "
                        "one session holds; end it there (COMMIT, ROLLBACK, "
                        "COM_RESET_CONNECTION) before using environment '%s'",
                        c->pinned ? c->pin_reason : "open transactions", CLIENT_MAX_HELD,
                        c->route.env->name);
        job_failed(c);
        return;
    }
    health *h = &p->health[env];
    if (!health_allow(h)) {
        health_view hv;
        health_get(h, &hv);
        client_send_err(c, 2003, "HY000", "envproxy: environment '%s' is down: %s",
                        c->route.env->name, hv.last_error);
        job_failed(c);
        return;
    }
    pool *pl = p->pools[env];
    backend *b;
    switch (pool_acquire(pl, &c->waiter, &b, c->w->base)) {
    case POOL_READY:
        backend_attach(b, c->w->base);
        hold(c, b);
        c->be = b;
        prepare_step(c);
        break;
    case POOL_CONNECT:
        open_backend(c, pl);
        break;
    case POOL_QUEUED:
        c->state = CL_WAIT_POOL;
        set_timer(c, c->route.env->pool.wait_timeout_ms);
        break;
    }
}

void client_prepare_done(backend *b, int rc, void *arg)
{
    client *c = arg;
    if (rc) {
        log_info("conn %u %s user=%s env=%s: %s", c->id, c->addr, c->user, b->pool->env->name,
                 b->err_msg);
        if (b->err_code >= 2000) {
            /* The connection broke (or fell silent): it goes, with any session state. The
             * error is copied first: client_lose_backend frees b. */
            const cfg_env *e = b->pool->env;
            uint16_t code = (uint16_t)b->err_code;
            char state[sizeof(b->err_state)], msg[sizeof(b->err_msg)], note[200];
            memcpy(state, b->err_state, sizeof(state));
            memcpy(msg, b->err_msg, sizeof(msg));
            client_lose_backend(c, b, note, sizeof(note));
            client_send_err(c, code, state, "envproxy: environment '%s': %s%s", e->name, msg,
                            note);
        } else {
            client_send_err(c, (uint16_t)b->err_code, b->err_state, "%s", b->err_msg);
        }
        job_failed(c);
        return;
    }
    prepare_step(c);
}

static void var_done(backend *b, int rc, void *arg)
{
    client *c = arg;
    if (rc == 0)
        session_applied(c, b, c->pending_var);
    client_prepare_done(b, rc, arg);
}

/* The value of a session variable as backend b has it, or NULL. */
static const char *backend_var(const backend *b, const char *name)
{
    for (int i = 0; i < b->n_vars; i++)
        if (strcasecmp(b->vars[i].name, name) == 0)
            return b->vars[i].value;
    return NULL;
}

void backend_policy_session(backend *b, policy_session *ps)
{
    /* The client character set the server reads this session's SQL in: the last value the
     * server reported, else the one the proxy set with SET NAMES. */
    const char *cs = backend_var(b, "character_set_client");
    if (!cs && b->charset[0])
        cs = b->charset;
    ps->charset = sqlpolicy_charset(cs);
    ps->flavor = b->mysql ? sqlpolicy_flavor(mysql_get_server_info(b->mysql)) : SQL_FLAVOR_UNKNOWN;
    ps->db = b->cur_db;
    ps->stored = NULL;
}

/* Whether sql is a fixed transaction text (BEGIN, COMMIT, ...) that backend b's session
 * reads as such (sqlpolicy_fixed_text_in). */
static bool backend_fixed_text(const backend *b, const char *sql, size_t len)
{
    return sqlpolicy_fixed_text_in(sql, len, &b->mode) != STMT_OTHER;
}

bool backend_policy_check(backend *b, const char *sql, size_t len, bool read_only,
                          policy_verdict *v)
{
    policy_session ps;
    if (backend_fixed_text(b, sql, len)) {
        /* Only the character set can refuse it (sqlpolicy.c reads it without lexing); the
         * server version, database and stored functions do not matter to it. */
        const char *cs = backend_var(b, "character_set_client");
        if (!cs && b->charset[0])
            cs = b->charset;
        ps.charset = sqlpolicy_charset(cs);
        if (!b->text_cs_known || b->text_cs == ps.charset) {
            ps.flavor = SQL_FLAVOR_UNKNOWN;
            ps.db = NULL;
            ps.stored = NULL;
            return read_only ? sqlpolicy_check(sql, len, &b->mode, &ps, v)
                             : sqlpolicy_check_secrets(sql, len, &b->mode, &ps, v);
        }
    }
    backend_policy_session(b, &ps);
    health *h = &b->pool->proxy->health[b->pool->index];
    stored_names *sn = read_only ? health_stored_get(h) : NULL;
    ps.stored = sn ? &sn->set : NULL;
    bool ok = read_only ? sqlpolicy_check(sql, len, &b->mode, &ps, v)
                        : sqlpolicy_check_secrets(sql, len, &b->mode, &ps, v);
    /* A character set an earlier statement set that the server has not confirmed (session
     * tracking may be off): the text must read the same way in it too. */
    if (ok && b->text_cs_known && b->text_cs != ps.charset) {
        policy_verdict v2;
        ps.charset = b->text_cs;
        ok = read_only ? sqlpolicy_check(sql, len, &b->mode, &ps, &v2)
                       : sqlpolicy_check_secrets(sql, len, &b->mode, &ps, &v2);
        if (!ok)
            *v = v2;
        else if (v2.charset_set && v2.charset_after != v->charset_after)
            v->charset_after = SQL_CS_UNSUPPORTED;
    }
    health_stored_put(h, sn);
    if (ok && v->charset_set) {
        b->text_cs_known = true;
        b->text_cs = v->charset_after;
    }
    return ok;
}

/* The values of session variable name that apply to client c on backend b: what b has
 * (reported by the server or set by the proxy) and what c carries; either may be NULL. */
static void session_values(client *c, backend *b, const char *name, const char *out[2])
{
    out[0] = backend_var(b, name);
    out[1] = NULL;
    for (int i = 0; i < c->n_vars; i++)
        if (strcasecmp(c->vars[i].name, name) == 0)
            out[1] = c->vars[i].value;
}

/* Whether a read-only session cannot run anything in its current state: a character set
 * the lexer does not read exactly (from the handshake, set now or carried from another
 * environment), or SERIALIZABLE. Writes the reason into what. */
static bool session_state_refused(client *c, backend *b, char *what, size_t cap)
{
    static const char *const cs_vars[] = {"character_set_client", "character_set_connection",
                                          "collation_connection"};
    static const char *const iso_vars[] = {"tx_isolation", "transaction_isolation"};
    const char *have[2];
    const char *hs = charset_name(c->charset);
    if (sqlpolicy_charset(hs) == SQL_CS_UNSUPPORTED) {
        snprintf(what, cap, "the client character set %.40s", hs ? hs : "(unknown)");
        return true;
    }
    for (size_t k = 0; k < sizeof(cs_vars) / sizeof(cs_vars[0]); k++) {
        session_values(c, b, cs_vars[k], have);
        for (int j = 0; j < 2; j++) {
            if (have[j] && sqlpolicy_charset(have[j]) == SQL_CS_UNSUPPORTED) {
                snprintf(what, cap, "the client character set %.40s", have[j]);
                return true;
            }
        }
    }
    if (!b->charset[0] && !backend_var(b, "character_set_client")) {
        snprintf(what, cap, "an unknown client character set");
        return true;
    }
    for (size_t k = 0; k < sizeof(iso_vars) / sizeof(iso_vars[0]); k++) {
        session_values(c, b, iso_vars[k], have);
        for (int j = 0; j < 2; j++) {
            if (have[j] && strcasecmp(have[j], "SERIALIZABLE") == 0) {
                snprintf(what, cap, "isolation level SERIALIZABLE");
                return true;
            }
        }
    }
    return false;
}

/* Whether sql may assign a session_track_ variable, read in mode: SET and such a name
 * anywhere in it, or text the lexer cannot read to the end (the server may). */
static bool sets_tracking_in(const char *sql, size_t len, const sql_mode_flags *mode)
{
    sql_lexer lx;
    sqllex_init(&lx, sql, len, mode);
    bool set = false, track = false;
    for (int i = 0; i < 1000000; i++) {
        sql_token t = sqllex_next(&lx);
        if (t.kind == SQLTOK_END)
            break;
        if (t.kind == SQLTOK_ERROR)
            return true;
        if (t.kind != SQLTOK_WORD && t.kind != SQLTOK_QIDENT)
            continue;
        const char *w = sql + t.start;
        size_t n = t.len;
        if (t.kind == SQLTOK_QIDENT && n >= 2) {
            w++;
            n -= 2;
        }
        if (n == 3 && strncasecmp(w, "SET", 3) == 0)
            set = true;
        if (n >= 14 && strncasecmp(w, "session_track_", 14) == 0)
            track = true;
    }
    return set && track;
}

bool session_sets_tracking(const char *sql, size_t len, const sql_mode_flags *mode)
{
    static const char name[] = "session_track_";
    bool named = false; /* the bytes hold the name at all (any case): else no lexing */
    for (size_t i = 0; !named && i + sizeof(name) - 1 <= len; i++)
        named = strncasecmp(sql + i, name, sizeof(name) - 1) == 0;
    if (!named)
        return false;
    if (!mode->unknown)
        return sets_tracking_in(sql, len, mode);
    for (int i = 0; i < 4; i++)
        if (sets_tracking_in(sql, len, &SQL_QUOTING_MODES[i]))
            return true;
    return false;
}

/* Checks a COM_QUERY against the read-only policy, read with the backend session's sql_mode
 * and character set, and follows SET sql_mode. Every session, read-only or not, is refused
 * reads of the server's credential stores. Returns false after refusing it. */
bool client_check_policy(client *c, backend *b, const char *sql, size_t len)
{
    policy_verdict v;
    bool ok;
    if (c->route.read_only && session_state_refused(c, b, v.what, sizeof(v.what)))
        ok = false;
    else
        ok = backend_policy_check(b, sql, len, c->route.read_only, &v);
    if (!ok) {
        const cfg_env *e = c->route.env;
        log_warn("conn %u %s user=%s env=%s: refused: %s", c->id, c->addr, c->user, e->name,
                 v.what);
        metrics_statement(c->p, env_index(c->p, e), VERDICT_REFUSED, -1);
        char why[160];
        snprintf(why, sizeof(why), "1290: %s is not allowed", v.what);
        client_audit(c, "refused", -1, -1, why, NULL);
        /* A dump that locks tables: the way that works here is a consistent snapshot. */
        const char *tip = strncmp(v.what, "LOCK", 4) == 0
                              ? " (for a backup, use mariadb-dump --single-transaction)"
                              : "";
        if (!c->route.read_only)
            client_send_err(c, 1290, "HY000",
                            "envproxy: %s is not allowed: backend credentials stay hidden",
                            v.what);
        else if (e->access != ACCESS_READ_WRITE)
            client_send_err(c, 1290, "HY000",
                            "envproxy: environment '%s' is read-only: %s is not allowed%s",
                            e->name, v.what, tip);
        else
            client_send_err(c, 1290, "HY000",
                            "envproxy: account '%s' may only read in environment '%s': %s "
                            "is not allowed%s",
                            c->user, e->name, v.what, tip);
        client_command_done(c);
        return false;
    }
    if (!v.charset_set && backend_fixed_text(b, sql, len)) {
        /* BEGIN, COMMIT and the like: no word of them pins a session, sets a variable or
         * names session tracking, in any character set. */
        c->job_mode_changed = false;
        c->job_sets_tracking = false;
        return true;
    }
    {
        /* The character set the text is read in; unsure when an earlier packet set one the
         * server has not confirmed, or this one sets one. */
        policy_session ps;
        backend_policy_session(b, &ps);
        sql_charset cs = ps.charset;
        if (v.charset_set || (b->text_cs_known && b->text_cs != cs))
            cs = SQL_CS_UNSUPPORTED;
        health *h = &b->pool->proxy->health[b->pool->index];
        stored_names *sn = health_stored_get(h);
        session_check_pins(c, &b->mode, cs, sn ? &sn->set : NULL, sql, len);
        health_stored_put(h, sn);
        if (!b->no_reset && session_defies_reset(&b->mode, cs, sql, len))
            b->no_reset = true;
    }
    c->job_mode_changed = session_may_set(sql, len);
    c->job_sets_tracking = session_sets_tracking(sql, len, &b->mode);
    return true;
}

/* Brings the backend to the session state the command needs, one step at a time, then
 * runs the command. */
static void prepare_step(client *c)
{
    backend *b = c->be;
    if (b->tainted && (c->route.read_only || strcmp(b->taint_user, c->user) != 0)) {
        if (c->route.read_only && strcmp(b->taint_user, c->user) == 0 &&
            client_session_has_state(c, b)) {
            /* This session's own connection holds its state (a transaction, temporary
             * tables, ...) and its route became read-only since (a reload demoted the
             * account or the environment): the reset would drop that state unseen. The
             * connection goes (the server rolls back), and the client is told, as when a
             * connection is lost. */
            const cfg_env *e = b->pool->env;
            char note[200];
            client_lose_backend(c, b, note, sizeof(note));
            client_send_err(c, 1213, "40001",
                            "envproxy: environment '%s': this account's access there became "
                            "read-only (configuration reloaded)%s. Start again",
                            e->name, note);
            job_failed(c);
            return;
        }
        /* A writable session used it: nothing it may have changed stays (tracking,
         * sql_mode, character sets, ...) for a read-only session or another account.
         * Resetting reads the session anew. */
        backend_reset(b, client_prepare_done, c);
        return;
    }
    if (b->resync) {
        backend_read_mode(b, client_prepare_done, c);
        return;
    }
    const char *db = c->job_has_db ? c->job_db : NULL;
    if (!db && b->cur_db) {
        backend_clear_db(b, client_prepare_done, c);
        return;
    }
    session_settle_charset(c, b);
    const char *cs = charset_name(c->charset);
    if (strcmp(b->charset, cs) != 0) {
        session_forget_charset(b);
        backend_set_charset(b, cs, client_prepare_done, c);
        return;
    }
    if (db && (!b->cur_db || strcmp(b->cur_db, db) != 0)) {
        backend_select_db(b, db, client_prepare_done, c);
        return;
    }
    if (b->read_only != c->route.read_only) {
        b->read_only = c->route.read_only;
        backend_query(b,
                      b->read_only ? "SET SESSION TRANSACTION READ ONLY"
                                   : "SET SESSION TRANSACTION READ WRITE",
                      client_prepare_done, c);
        return;
    }
    if (b->multi_stmt != (c->multi_stmt ? 1 : 0)) {
        backend_set_multi(b, c->multi_stmt, client_prepare_done, c);
        return;
    }
    char set[sizeof(b->op_text)];
    if (session_next_set(c, b, set, sizeof(set), &c->pending_var)) {
        backend_query(b, set, var_done, c);
        return;
    }

    if ((c->job == JOB_QUERY || c->job == JOB_STMT) && !txn_ready(c, b))
        return;

    switch (c->job) {
    case JOB_QUERY:
        if (c->cmd.data[0] == CMD_QUERY &&
            !client_check_policy(c, b, (const char *)c->cmd.data + 1, c->cmd.len - 1))
            return;
        relay_start(c, c->rl);
        break;
    case JOB_PREPARE:
    case JOB_STMT:
        stmt_run(c);
        break;
    case JOB_USE:
    case JOB_LOGIN_DB:
        c->env = c->route.env;
        snprintf(c->db, sizeof(c->db), "%s", c->job_db);
        c->has_db = true;
        client_send_ok(c, ST_AUTOCOMMIT);
        if (c->job == JOB_LOGIN_DB)
            log_info("conn %u %s user=%s: database %s in env %s", c->id, c->addr, c->user,
                     c->db, c->env->name);
        client_command_done(c);
        break;
    case JOB_NONE:
        client_command_done(c);
        break;
    }
}
