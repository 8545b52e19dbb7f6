/* envproxy.h: the central types: proxy, worker, client, backend connection, pool. */
#ifndef ENVPROXY_H
#define ENVPROXY_H

#include "accounts.h"
#include "config.h"
#include "grants.h"
#include "packet.h"
#include "router.h"
#include "sqlpolicy.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <mysql.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define ENVPROXY_VERSION "0.1.0"

typedef struct proxy proxy;

/* A session variable a client set, carried to every backend connection it uses. The value
 * is on the heap, whatever its length (a server reports sql_mode values of 500 bytes and
 * more); session_vars_clear() frees a set of them. */
#define SESSION_VARS 12
typedef struct {
    char name[40];
    char *value;
} sess_var;
typedef struct worker worker;
typedef struct internal_login internal_login;
typedef struct client client;
typedef struct backend backend;
typedef struct pool pool;

/* ---- backend connections (backend.c) ---------------------------------------------------- */

typedef enum {
    BOP_NONE,
    BOP_CONNECT,
    BOP_SELECT_DB,
    BOP_QUERY, /* a statement without a result set */
    BOP_RESET,
    BOP_SET_OPTION,
    BOP_CHARSET,
    BOP_CHANGE_USER,
    BOP_READ_MODE, /* SELECT @@SESSION.sql_mode, then its result */
    BOP_PING,
    BOP_FETCH, /* a statement whose rows are handed to fetch_row one by one */
} be_op;

/* Called on the backend's current event base when an operation ends: rc 0 on success, -1
 * with b->err_code / b->err_state / b->err_msg filled. */
typedef void (*be_done_fn)(backend *b, int rc, void *arg);

struct backend {
    pool *pool;
    MYSQL *mysql;
    int fd;
    struct event_base *base; /* the loop currently driving it */
    struct event ev;
    bool ev_added;
    /* backend_watch's callback; NULL while parked (backend_park). */
    event_callback_fn watch_cb;
    void *watch_arg;

    be_op op;
    be_done_fn done;
    void *done_arg;
    int ret_int;
    my_bool ret_bool;
    MYSQL *ret_mysql;
    MYSQL_RES *ret_res;
    MYSQL_ROW ret_row;
    int op_phase;
    uint64_t op_deadline_ms; /* the operation fails when the server is silent past this */
    /* BOP_FETCH: called for each row (row NULL: the columns are known, before any row);
     * returns false to stop reading. */
    bool (*fetch_row)(backend *b, MYSQL_ROW row, unsigned long *lengths, void *arg);
    char *fetch_sql;
    bool fetch_more; /* rows were left unread */
    char op_text[4096]; /* the statement of BOP_QUERY, the database of BOP_SELECT_DB */
    /* host, user, password, database of the running connect or change user (copies). */
    char *login[4];

    /* Session state known to be applied on the server side. */
    char *cur_db;        /* NULL: no database */
    bool read_only;      /* SET SESSION TRANSACTION READ ONLY */
    int multi_stmt;      /* multi-statements enabled: 1, 0, or -1 not known */
    char charset[32];    /* character set of SET NAMES; "" = unknown */
    bool text_cs_known;  /* a statement the policy read set the client character set, and the
                            server has not reported the variable since (tracking may be off) */
    sql_charset text_cs; /* ... to this (SQL_CS_UNSUPPORTED: not a supported one) */
    bool ext_metadata;   /* column definitions carry MariaDB's extended metadata */
    bool no_db;          /* connect without a default database (the health checker's) */
    unsigned timeout_s;  /* connect, read and write timeout in seconds; 0: the defaults */
    uint64_t target;     /* backend_target() of the configuration it connected with */
    bool single_stmt;    /* connect without multi-statements (fan-out and compare tasks) */
    SSL *ssl;            /* Connector/C's TLS session on fd, or NULL: the relay reads it */
    sql_mode_flags mode;         /* how the session reads SQL (ANSI_QUOTES, ...) */
    sql_mode_flags default_mode; /* the mode a new or reset session starts with */
    sess_var vars[SESSION_VARS]; /* carried variables as this session has them */
    int n_vars;
    bool dirty; /* a session variable changed that is not carried: reset before reuse */
    /* Its diagnostics area may hold a client statement's warnings or error, which only a
     * statement that uses tables, or a reset, clears: reset before another session uses it
     * (SHOW WARNINGS, GET DIAGNOSTICS would read them). */
    bool diag;
    /* They are the session's latest statement's: it keeps the connection until its next
     * statement that is not SHOW WARNINGS, SHOW ERRORS or GET DIAGNOSTICS. */
    bool diag_hold;
    /* A client's XA or SET ROLE ran on it: closed instead of reset when let go (a server
     * session reset after XA PREPARE stays broken, every write fails with 1031; a reset
     * keeps the current role). */
    bool no_reset;
    uint16_t status; /* server status of its last response (transaction, autocommit) */
    struct be_kill *kill; /* a KILL QUERY side connection: its request (freed with it) */
    bool mariadb; /* a MariaDB server: its status flags show ANSI_QUOTES too */
    /* Client SQL ran here in a writable route, where anything can change the session
     * unseen (stored procedures, EXECUTE): reset before a read-only route, or a session of
     * another account (taint_user), uses it. */
    bool tainted;
    char taint_user[ROUTE_NAME_MAX + 1];
    /* How the session reads SQL is not known for sure (a statement that may have set
     * sql_mode failed, a session_track_ variable changed): read it again (tracking on,
     * SELECT @@sql_mode) before the next statement is checked. */
    bool resync;
    bool closing; /* the server answered with an error after which it closes the connection
                   * (1153 packet too large, 1157-1161 network errors): never reused */
    bool read_fresh; /* BOP_READ_MODE follows a connect or reset (not a resync) */
    unsigned long thread_id;

    /* The raw relay: bytes read from and queued for the socket. */
    struct evbuffer *in, *out;

    /* Prepared statements living on this connection, most recently used first; shared by
     * every client whose statement has the same text and database (stmt.c). */
    struct be_stmt *stmts;
    struct be_stmt **stmt_slots; /* stmt.c's index of stmts by text hash, made at the first */
    int n_stmts;
    uint64_t next_stmt_uid;
    uint64_t parse_epoch; /* bumped when a setting that changes how SQL is read changes */

    uint64_t serial; /* unique for the life of the process */
    uint64_t idle_since_ms;
    backend *next;               /* idle list */
    backend *all_prev, *all_next; /* every connection of the pool, for shutdown */

    unsigned err_code;
    char err_state[6];
    char err_msg[256];
    int conn_tries; /* addresses of the host name tried after the first, this connect */
};

backend *backend_new(pool *pl);
/* A hash of what a connection is opened against (server, account, TLS settings): after a
 * reload that changes it, older connections are not reused. */
uint64_t backend_target(const cfg_env *e);
/* Starts connecting on base; done is called when connected or failed. */
void backend_connect(backend *b, struct event_base *base, be_done_fn done, void *arg);
void backend_select_db(backend *b, const char *db, be_done_fn done, void *arg);
void backend_query(backend *b, const char *sql, be_done_fn done, void *arg);
void backend_reset(backend *b, be_done_fn done, void *arg);
void backend_set_multi(backend *b, bool on, be_done_fn done, void *arg);
void backend_set_charset(backend *b, const char *cs, be_done_fn done, void *arg);
/* COM_CHANGE_USER to the pool's own account with no database: the way back to "no database". */
void backend_clear_db(backend *b, be_done_fn done, void *arg);
/* Switches session tracking of every variable on again and reads the session's sql_mode
 * into b->mode (b->resync). Connecting and resetting do the same by themselves, and also
 * set b->default_mode. */
void backend_read_mode(backend *b, be_done_fn done, void *arg);
void backend_ping(backend *b, be_done_fn done, void *arg);
/* Runs sql (copied) and hands each row to row_cb on the backend's loop; done at the end. */
void backend_fetch(backend *b, const char *sql,
                   bool (*row_cb)(backend *b, MYSQL_ROW row, unsigned long *lengths, void *arg),
                   be_done_fn done, void *arg);
/* Moves the backend to base (it must have nothing pending). */
void backend_attach(backend *b, struct event_base *base);
/* Stops watching the socket (the raw relay or an operation). */
void backend_unwatch(backend *b);
/* After a response: keeps the socket registered with the loop (without a callback) so that
 * the next backend_watch on the same loop costs no system call. A parked socket that
 * becomes readable (the server closed it) is simply unregistered. */
void backend_park(backend *b);
/* Watches the socket for the raw relay: cb on readability (and writability while b->out
 * holds bytes). */
void backend_watch(backend *b, event_callback_fn cb, void *arg);
/* Writes b->out; returns 0 (all or part written, the rest on the next writable event) or
 * -1 when the connection is broken. */
int backend_flush(backend *b);
/* Reads what the socket (or its TLS session) has into buf, at most cap bytes: > 0 bytes
 * read, 0 end of stream, -2 nothing now, -1 broken. */
int backend_read(backend *b, uint8_t *buf, size_t cap);
/* True when the idle socket shows EOF or unexpected bytes: it cannot be used (a peek). */
bool backend_is_dead(backend *b);
/* The same for a connection about to be used on base (the calling thread's loop), without a
 * system call when b was parked on that loop and the loop has not seen its socket readable
 * since (backend_park); else the peek of backend_is_dead(). */
bool backend_idle_dead(backend *b, struct event_base *base);
/* Opens a side connection to pl's environment on base and runs KILL QUERY thread_id there:
 * the statement_timeout, KILL QUERY and disconnect paths. done (may be NULL) is called on
 * base when it is over: ended true when the kill was delivered or the thread was gone
 * already, false when it could not be delivered (connect or the query failed in time).
 * Returns a handle for backend_kill_forget, or NULL when it was over at once (done was
 * called already). */
typedef void (*be_kill_fn)(void *arg, bool ended);
struct be_kill;
struct be_kill *backend_kill_query(pool *pl, struct event_base *base, unsigned long thread_id,
                                   be_kill_fn done, void *arg);
/* The kill goes on, but done is not called any more (its owner goes away). */
void backend_kill_forget(struct be_kill *k);
/* Closes the connection and frees b (the pool's counters are not touched). */
void backend_free(backend *b);

/* ---- pools (pool.c) ----------------------------------------------------------------------- */

typedef enum {
    PW_NONE,
    PW_QUEUED,  /* waiting on the pool's queue */
    PW_GRANTED, /* a connection was handed over: in granted */
    PW_SLOT,    /* permission to open a new connection was handed over */
} pw_state;

/* A client's place in a pool's queue. When the state leaves PW_QUEUED (on any thread, under
 * the pool's lock), a WQ_WAKE request goes to owner, whose loop then activates wake. */
typedef struct pool_waiter {
    struct pool_waiter *prev, *next;
    pool *pool;
    pw_state state;
    backend *granted;
    struct event *wake;
    struct worker *owner; /* the worker that queued it (set by pool_acquire) */
} pool_waiter;

typedef enum { POOL_READY, POOL_CONNECT, POOL_QUEUED } pool_result;

struct pool {
    proxy *proxy;
    _Atomic(const cfg_env *) env; /* the newest configuration's entry for this name */
    atomic_ullong target;         /* backend_target(env), kept: a hash is not free */
    atomic_bool removed;          /* gone from the configuration: drains, then stays empty */
    int index;
    pthread_mutex_t mu;
    backend *idle; /* most recently used first */
    int n_idle;
    int n_total; /* idle + busy + connecting */
    pool_waiter *wait_head, *wait_tail;
    int n_waiting;
    backend *all; /* every connection, whatever its state */
    atomic_ullong connect_errors;
};

pool *pool_new(proxy *p, const cfg_env *env, int index);
void pool_free(pool *pl);
/* POOL_READY: *out is a healthy idle connection, now busy. POOL_CONNECT: a slot is
 * reserved, the caller opens a connection. POOL_QUEUED: w is queued. */
/* base: the caller's loop; an idle connection last used there is preferred (it is still
 * registered with that loop, see backend_park). */
pool_result pool_acquire(pool *pl, pool_waiter *w, backend **out, struct event_base *base);
/* Leaves the queue. Returns a connection granted meanwhile (the caller owns it), or NULL;
 * a slot granted meanwhile is given back. A wake-up queued for w is withdrawn. */
backend *pool_cancel(pool *pl, pool_waiter *w);
/* The waiter's client goes away (its worker): leaves the queue if still there and withdraws
 * any wake-up queued for it, so that nothing refers to w afterwards. */
void pool_waiter_gone(pool_waiter *w);
/* Runs on the worker whose loop is base (WQ_UNPARK): hands this pool's idle connections
 * parked on base to the clients waiting in the queue. */
void pool_unpark_for_waiters(pool *pl, struct event_base *base);
/* A healthy, reset connection goes back: to the first waiter, else to the idle list. */
void pool_release(pool *pl, backend *b);
/* A connection that failed or was closed leaves the pool (b is freed); its slot goes to the
 * first waiter. Also used to give back a slot whose connect failed (b may be NULL). */
void pool_discard(pool *pl, backend *b);
/* Closes idle connections older than idle_timeout, keeping min. Called by the main loop. */
void pool_maintain(pool *pl, uint64_t now_ms);
void pool_stats(pool *pl, int *in_use, int *idle, int *waiting);
/* Opens connections on base until the pool holds min (main loop, once a second). */
void pool_fill(pool *pl, struct event_base *base);

/* Resets b (on its current base) and gives it back, or discards it when the reset fails. */
void backend_recycle(backend *b);

/* ---- metrics (metrics.c, http/server.c) ----------------------------------------------------- */

#define METRIC_BUCKETS 10
extern const double metric_bucket_bounds[METRIC_BUCKETS]; /* seconds; +Inf is implied */

/* Counters of one environment. Each worker has its own set (worker.metrics, written by that
 * thread alone, so no cache line bounces between workers per statement); threads without
 * one add to proxy.metrics with atomic additions. /metrics sums them. */
typedef struct env_metrics {
    atomic_ullong stmt_allowed, stmt_refused, stmt_error;
    atomic_ullong latency_bucket[METRIC_BUCKETS + 1];
    atomic_ullong latency_sum_us;
    atomic_ullong rows_sent, bytes_sent;
} env_metrics;

typedef enum { VERDICT_ALLOWED, VERDICT_REFUSED, VERDICT_ERROR } verdict;

unsigned long long proxy_audit_drops(proxy *p);

/* throttle.c: failed-login throttling by client address and by account. */
typedef enum { THROTTLE_OK, THROTTLE_HOST, THROTTLE_ACCOUNT } throttle_verdict;
throttle_verdict throttle_blocked(const config *c, const char *host, const char *user);
void throttle_failure(const config *c, const char *host, const char *user);
/* A login of user from host succeeded: that account's failures from that address are
 * forgotten; other accounts' failures from the address still count. */
void throttle_success(const char *host, const char *user);
unsigned long long throttle_refused(void);
/* Makes the calling thread count into w's own counters (a worker thread, at its start). */
void metrics_bind_worker(worker *w);
/* A statement ended in environment env after ms milliseconds (ms < 0: not timed). */
void metrics_statement(proxy *p, int env, verdict v, double ms);
/* A statement came in by door 0 (the MySQL port), 1 (HTTP API) or 2 (MCP). */
void metrics_door(proxy *p, int door);
void metrics_rows(proxy *p, int env, unsigned long long rows, unsigned long long bytes);
/* The Prometheus text exposition of every metric, into buf. */
void metrics_render(proxy *p, struct evbuffer *buf);
/* http/server.c: /health and /metrics on cfg->http. */
int http_start(proxy *p);
void http_stop(proxy *p);

/* ---- health (health.c) ------------------------------------------------------------------ */

typedef enum {
    HC_CONNECT,
    HC_GRANTS,
    HC_ROLE,
    HC_ROLE_SET,
    HC_ROLE_SHOW,
    HC_STORED_FN,  /* names of the stored functions (the policy refuses calls of them) */
    HC_STORED_UDF, /* ... and of the UDFs */
} health_phase;

/* What the last checks found about one environment. Written by the main loop (and by
 * workers that reach or fail to reach it), read by anyone under mu. */
/* The stored functions and UDFs of a backend, as the health checker last read them: shared
 * read-only by the policy checks of every worker, freed with the last reference. */
typedef struct stored_names {
    int refs; /* under health.mu */
    sql_name_set set;
    char **names;
} stored_names;

typedef struct health {
    pool *pool;
    /* The checker, main loop only. */
    backend *conn;        /* its own connection */
    struct event_base *base;
    struct event *timer;  /* the running check's deadline (health_timeout) */
    bool busy;            /* a check runs */
    bool abandoned;       /* its deadline passed: what it finds is ignored */
    bool reused, retried; /* it started on an old connection; it reconnected once */
    health_phase phase;
    grants_info grants;   /* being gathered */
    int role_next, role_now;
    int writable_logged;  /* the backend_writable last logged (-2: nothing yet) */
    uint64_t conn_outages; /* outages when conn was opened */
    uint64_t conn_target;  /* what conn was opened against (health.c, target_of) */
    atomic_bool down;     /* known down: lets health_seen_alive and health_allow skip the lock */
    pthread_mutex_t mu;
    bool known, up;
    uint64_t outages; /* up (or unknown) -> down transitions */
    char last_error[200];
    char version[96];
    double latency_ms;
    long long checked_at; /* wall clock, seconds */
    int writable;         /* the backend account can change things: 1, 0, -1 unknown */
    int reads_routines;   /* it is shown every stored routine (grants.h): 1, 0, -1 unknown */
    int reads_triggers;   /* it has TRIGGER somewhere (grants.h): 1, 0, -1 unknown */
    char privileges[256]; /* what can (or why unknown) */
    uint64_t started_ms, next_ms, last_try_ms;
    stored_names *stored; /* under mu; NULL until first read */
    /* the read in progress (main loop only) */
    char **fetch;
    size_t fetch_n, fetch_cap;
    bool fetch_bad;  /* too many names, or out of memory */
} health;

typedef struct {
    bool known, up;
    char last_error[200];
    char version[96];
    double latency_ms;
    long long checked_at;
    int writable;
    int reads_routines;
    int reads_triggers;
    char privileges[256];
} health_view;

/* The backend's stored function and UDF names with a reference, or NULL when not read yet;
 * give it back with health_stored_put(). Any thread. */
stored_names *health_stored_get(health *h);
void health_stored_put(health *h, stored_names *sn);

void health_init(health *h, pool *pl);
void health_free(health *h);
/* Starts the checks that are due (main loop, every second). */
void health_tick(health *h, struct event_base *base, uint64_t now);
/* Whether a statement may try a down environment now (one try a second gets through, the
 * others fail fast); always true for an environment that is up. */
bool health_allow(health *h);
void health_note(health *h, bool up, const char *error);
/* A worker got a connection or a response from the environment: up, if it was down. */
void health_seen_alive(health *h);
void health_get(health *h, health_view *out);
/* "yes", "no" or "unknown" for health_view.writable. */
const char *health_writable_name(int writable);
/* Whether every environment has been checked at least once. */
bool health_all_known(proxy *p);

/* ---- clients (client.c, relay.c) ------------------------------------------------------ */

typedef enum {
    CL_GREETING,    /* greeting sent; waiting for the handshake response (or SSLRequest) */
    CL_AUTH_SWITCH, /* auth switch sent; waiting for the client's answer */
    CL_IDLE,        /* logged in, ready for a command */
    CL_WAIT_POOL,   /* a command waits for a backend connection */
    CL_PREPARE,     /* a command waits while its backend is made ready (db, mode, ...) */
    CL_RELAY,       /* a command runs on the backend; its response is relayed */
    CL_CLOSING,     /* the last bytes are flushed, then the client is freed */
} cl_state;

/* What a command needs done once its backend is ready. */
typedef enum {
    JOB_NONE,
    JOB_QUERY,       /* forward the command, relay the response */
    JOB_USE,         /* USE / COM_INIT_DB: switch the session on success */
    JOB_LOGIN_DB,    /* the handshake's database: finish the login on success */
    JOB_PREPARE,     /* COM_STMT_PREPARE: relay the response, remember the statement */
    JOB_STMT,        /* COM_STMT_EXECUTE / RESET / SEND_LONG_DATA on a prepared statement */
} job_kind;

/* The relay's position in a response. */
typedef enum {
    RL_FIRST,    /* OK, ERR, or a column count */
    RL_COLUMNS,  /* column definitions */
    RL_COLS_EOF, /* the EOF after the column definitions */
    RL_ROWS,     /* rows until EOF or ERR */
    RL_FIELDS,   /* COM_FIELD_LIST: column definitions until EOF or ERR */
    RL_INFILE,   /* LOAD DATA LOCAL INFILE: the client's file goes to the backend */
    RL_ONE,      /* a single packet (COM_STATISTICS) */
    RL_PREP_OK,       /* COM_STMT_PREPARE: OK or ERR */
    RL_PREP_PARAMS,   /* parameter definitions */
    RL_PREP_PARAMS_EOF,
    RL_PREP_COLS,     /* result column definitions */
    RL_PREP_COLS_EOF,
} relay_state;

/* A statement prepared on a backend connection. Clients' statements with the same text
 * and database use it, on whichever connection they run; it goes when the connection is
 * reset or closed, or when the connection has too many (the least recently used). */
typedef struct be_stmt {
    struct be_stmt *next, *prev; /* most recently used first */
    uint64_t uid;        /* unique on its connection */
    uint32_t backend_id; /* the server's statement id */
    uint32_t hash;       /* of the text and database */
    uint64_t epoch;      /* the connection's parse_epoch when prepared */
    sql_mode_flags mode; /* the sql_mode it was prepared in */
    char *sql;
    size_t sql_len;
    char db[ROUTE_NAME_MAX + 1]; /* "" with no database */
    uint16_t n_params, n_columns;
    uint8_t *types; /* the parameter types the server holds for it, 2 bytes each, or NULL */
    /* The PREPARE response (definitions as the backend sent them, extended metadata when
     * b->ext_metadata; pkt_append_columns converts), to answer a client's PREPARE of
     * the same text without the server. */
    uint16_t warnings;
    pbuf params, columns;
    /* The result metadata the server last sent for it: MariaDB does not repeat metadata that
     * did not change ("metadata follows" 0), and the relay supplies it from here. */
    pbuf result_columns;
    uint64_t n_result_columns;
} be_stmt;

#define BACKEND_MAX_STMTS 100

/* A prepared statement of a client. Its id is the proxy's own; it runs as a backend
 * statement of the same text on whichever connection the session has at the time, which is
 * prepared there first (silently) when that connection lacks one. */
typedef struct cl_stmt {
    struct cl_stmt *next;
    uint32_t id;
    uint32_t backend_id; /* of the PREPARE response being read */
    uint64_t be_serial;  /* the connection it last ran on, and */
    uint64_t be_uid;     /* the backend statement there */
    uint32_t hash;
    int env;
    char db[ROUTE_NAME_MAX + 1];
    bool has_db;
    bool read_only;
    bool changes_mode; /* the text may set a variable (sql_mode among them) */
    bool sets_tracking; /* the text may set session_track_ variables */
    bool moves_session; /* no routing hint: what it changes is the session's (SET, USE) */
    bool long_data;     /* COM_STMT_SEND_LONG_DATA sent, EXECUTE or RESET not yet */
    /* A SEND_LONG_DATA for it failed (it has no reply to carry the error): the ERR packet's
     * payload, which its next EXECUTE gets instead of running, as a server does. */
    uint8_t *deferred_err;
    size_t deferred_err_len;
    bool local;         /* answered by the proxy itself (stmt_local.c): no backend statement */
    pbuf *local_long;   /* local: long data per parameter, or NULL */
    /* local, without parameters: the text is a transaction statement (txn_is_control), and
     * local_words is 1 + its txn_words_kind() (0: not in plain words). Both depend on the
     * text alone. */
    bool local_control;
    int local_words;
    size_t local_long_size;
    sql_mode_flags mode; /* the sql_mode the policy read it with */
    sql_charset cs;      /* ... and the client character set (stmt_text_cs) */
    /* txn_classify() of sql in txn_mode, once txn_known: each EXECUTE in a transaction asks,
     * and the answer depends on the text and the mode alone. */
    bool txn_known;
    int txn_kind;
    sql_mode_flags txn_mode;
    /* The account's grant for env (route_for_stmt), once grant_known: valid while the
     * session's configuration generation, account store generation and account are these. */
    bool grant_known;
    bool grant_ok;
    grant_level grant;
    unsigned grant_cfg_gen;
    int grant_acct_gen;
    const account *grant_acct;
    char *sql;
    size_t sql_len;
    uint16_t n_params, n_columns, prep_warnings;
    uint8_t *param_types; /* 2 bytes per parameter, from the last EXECUTE that sent them */
    size_t charged;       /* counted in client.stmt_bytes while registered */
    /* The definitions of the PREPARE response being read, in the backend's format, one
     * packet each. */
    pbuf params, columns;
} cl_stmt;

#define CLIENT_MAX_HELD 8 /* backend connections one client holds at once */
/* Prepared statements one session may hold, and the bytes they may take (texts and
 * definitions): the server's own default max_prepared_stmt_count, and room for one
 * statement of the largest packet. A client that prepares without closing gets ERR 1461
 * instead of growing the proxy without bound. */
#define CLIENT_MAX_STMTS 16382
#define CLIENT_MAX_STMT_BYTES ((size_t)64 << 20)

/* How long a closing client may take to read its last bytes (an error, a TLS close). */
#define CLIENT_CLOSE_FLUSH_MS 5000

struct client {
    worker *w;
    proxy *p;
    config *cfg; /* the configuration this session uses (pinned: proxy_cfg_get) */
    client *prev, *next;
    uint32_t id;
    int fd;
    struct bufferevent *bev;
    char addr[64]; /* "127.0.0.1:51234" */
    uint16_t addr_len; /* strlen(addr), for the audit log (0: not known) */
    char host[48]; /* "127.0.0.1" */
    const char *via; /* "mysql", or "http"/"mcp" for an internal session (audit) */
    cl_state state;
    cl_state state_at_free;
    client *reg_next; /* the proxy's registry, under reg_mu */
    bool registered;
    /* What SHOW PROCESSLIST shows of this session, read from other workers under ps_mu:
     * written by this client's worker only (local_ps_begin / local_ps_idle /
     * local_register). user, db and info are written under ps_mu; command, since_ms and
     * has_info are atomic, so that a command that changes neither the text shown nor the
     * database takes no lock (has_info is cleared without it: info itself only changes
     * under the lock). */
    pthread_mutex_t ps_mu;
    struct {
        char user[ROUTE_NAME_MAX + 1];
        char db[2 * ROUTE_NAME_MAX + 2]; /* "db@env", "" with no database */
        _Atomic(const char *) command;   /* "Sleep", "Query", ... (static strings) */
        _Atomic uint64_t since_ms;       /* when the session entered that state */
        char *info;                      /* the running statement when has_info */
        size_t info_len, info_cap;
        atomic_bool has_info;
    } ps;
    bool in_input;     /* inside client_process_input(): freeing is deferred */
    /* A read lent from the worker's read_buf for one callback (client_sock_read_cb): bytes
     * lent[lent_off .. lent_len) come before the input's; NULL when none. */
    const uint8_t *lent;
    size_t lent_len, lent_off;
    bool free_pending;
    bool tls;
    bool tls_shut;  /* CL_CLOSING: close_notify queued */
    bool in_paused; /* reading stopped: too much input sent ahead (max_pipelined_input) */
    bool name_ok;   /* the login's user name is one an account can have */
    uint64_t close_deadline_ms;        /* CL_CLOSING: freed by then whatever is unsent */
    struct evbuffer_cb_entry *close_cb; /* CL_CLOSING with TLS: on the socket's output */
    struct event *linger_ev; /* CL_CLOSING: discards input after the last bytes went out */
    /* Reads the plain socket into the bufferevent's input (client_sock_read_cb); NULL once
     * TLS took over the socket (the TLS filter then reads through the socket bufferevent). */
    struct event *rd_ev;
    /* Handshake, pool-wait, idle, statement, kill-grace and closing deadlines. The statement
     * and idle deadlines are kept lazily: the timer is left added when a statement or an idle
     * spell ends, and a firing checks the deadline of the state it finds (client_timer_cb),
     * re-adding itself for what is left. Added and deleted only through client_timer_arm()
     * and client_timer_stop(), which keep timer_due_ms. */
    struct event *timer;
    uint64_t timer_due_ms; /* when c->timer fires (now_ms() clock), 0: not added */
    uint64_t idle_since_ms; /* CL_IDLE: when the last command ended */
    struct event *wake;  /* activated by the pool */
    pool_waiter waiter;

    /* Handshake and authentication. */
    uint8_t scramble[20];
    uint32_t caps;
    uint8_t charset;
    uint8_t seq; /* next sequence id toward the client */
    char user[ROUTE_NAME_MAX + 1];
    uint16_t user_len; /* strlen(user): set wherever user is */
    char login_db[2 * ROUTE_NAME_MAX + 2];
    bool has_login_db;
    char counted_user[ROUTE_NAME_MAX + 1]; /* counted for max_connections_per_account */

    /* The account, looked up again when the store changes. */
    struct acct_ref *acct_ref;
    const account *acct;
    int acct_gen;

    /* The session's position. */
    const cfg_env *env; /* NULL when the account has no grant anywhere */
    char db[ROUTE_NAME_MAX + 1];
    bool has_db;
    bool multi_stmt;

    /* Session variables the client set (SET NAMES, time_zone, ...), for every backend. */
    sess_var vars[SESSION_VARS];
    int n_vars;
    int pending_var; /* the variable whose SET runs now */

    /* Multiplexing: without state that ties the session to its backend connection, the
     * connection goes back to the pool after each command. */
    bool pinned;
    char pin_reason[64];
    int long_data_stmts; /* statements whose long data waits on the held connection */
    struct cl_stmt *exec_long_data; /* an EXECUTE under way uses this statement's long data:
                                     * it is state until the server has answered */
    /* The command running has no reply (COM_STMT_SEND_LONG_DATA): nothing goes to the
     * client; an error is kept on no_reply_stmt for its next EXECUTE (client_send). */
    bool no_reply;
    struct cl_stmt *no_reply_stmt;
    uint16_t last_status; /* server status of the last response (transaction, autocommit) */
    /* limits.idle_transaction_timeout: fires while the session idles with a held backend
     * inside a transaction; the next command then gets txn_lost (the environment's name). */
    struct event *txn_timer;
    bool txn_timer_on; /* txn_timer is added: deleting a timer that is not costs a lock */
    char txn_lost[ROUTE_NAME_MAX + 1];
    long long txn_lost_ms;

    /* Backend connections held, at most one per environment. */
    backend *held[CLIENT_MAX_HELD];
    int held_env[CLIENT_MAX_HELD];

    /* The command being served. */
    pbuf cmd; /* the payload of the current client packet (continuations joined) */
    bool cmd_done; /* cmd holds a whole packet already handled */
    job_kind job;
    route_result route;
    char job_db[ROUTE_NAME_MAX + 1];
    uint16_t job_db_len; /* strlen(job_db): set wherever job_db is */
    bool job_has_db;
    bool job_moves_session; /* the statement runs at the session's position */
    bool job_mode_changed;  /* the statement may set sql_mode: read it again if it fails */
    bool rl_mode_tracked;   /* the response reported the session's sql_mode */
    bool job_sets_tracking; /* the statement may set session_track_ variables */
    backend *be;

    /* Relay state. */
    relay_state rl;
    uint64_t rl_columns;   /* column definitions still expected */
    size_t rl_remaining;   /* payload bytes of the current physical packet still to copy */
    bool rl_continued;     /* the current logical packet continues in another packet */
    bool rl_paused;        /* backend reads paused until the client drains */
    uint64_t rl_rows;      /* rows of the current result set sent to the client */
    bool rl_discard;       /* the current packet is dropped: past max_rows */
    bool rl_truncated;     /* the current result set lost rows to max_rows */
    bool rl_warned;        /* the response so far carried the backend's warnings */
    bool job_reads_diag;   /* the statement is SHOW WARNINGS|ERRORS|COUNT, GET DIAGNOSTICS */
    /* An interrupted statement (statement_timeout, KILL QUERY; relay.c): its query is being
     * killed; from the first packet that would start or continue a result, the rest of
     * the response is read and dropped (the sink), and the client then gets the
     * interruption's error with sequence id rl_seq_cut. */
    uint8_t rl_interrupt;  /* RLI_NONE, RLI_TIMEOUT, RLI_KILLED */
    bool rl_sink;          /* the backend's packets are dropped */
    bool rl_ended;         /* the response ended; the kill's answer is awaited */
    bool rl_end_failed;    /* it ended with an error of its own */
    uint8_t rl_seq_cut;    /* the client's sequence id when the sink started */
    unsigned long long rl_rows_cut; /* rows the client had got then */
    struct be_kill *rl_kill; /* the kill under way, or NULL */
    bool rl_silent;        /* a PREPARE of our own: nothing goes to the client */
    bool rl_capture;       /* this execution's column definitions are kept for the next */
    /* The backend bytes of the batch being handled, contiguous (relay.c, in_open): read
     * straight from the socket into the worker's buffer (rl_in_direct), or b->in. */
    uint8_t *rl_in;
    size_t rl_in_len, rl_in_off;
    bool rl_in_direct;
    bool rl_batch; /* a batch of backend packets is being handled (relay.c, in_open) */
    uint64_t rl_started_ms;
    uint64_t rl_deadline_ms; /* the statement's statement_timeout deadline, 0: none */
    unsigned long long rl_bytes; /* bytes of the response sent to the client */
    /* The response's packets for the client, gathered while a batch of backend packets is
     * handled and handed to the client's socket buffer in one move (relay_flush_out). */
    struct evbuffer *rl_out;
    unsigned long long rl_total_rows;
    bool busy;             /* counted in proxy.busy_clients */
    char rl_error[200];    /* the backend's error for the audit log: "1146: Table ..." */
    uint16_t rl_count;     /* parameter or column definitions still expected */
    /* LOAD DATA LOCAL INFILE (relay.c): the file the client's statement names (the only one
     * a backend may have), and where its transfer is. */
    char *infile_name;     /* malloc'd, NUL-terminated; NULL when the command names none */
    size_t infile_len;
    uint8_t rl_infile;     /* INF_NONE, INF_SENDING, INF_DRAIN, INF_SENT, INF_DECLINED */
    uint8_t rl_be_seq;     /* the backend's next sequence id while the file goes to it */
    size_t rl_file_left;   /* payload bytes of the client's current file packet still to move */
    bool rl_file_cont;     /* that packet is full size: the next one continues it */
    unsigned long long rl_file_bytes; /* bytes of the file moved so far */
    uint64_t rl_infile_seen_ms; /* INF_DRAIN: when the client last sent something */
    char rl_infile_msg[640]; /* INF_DRAIN, INF_DECLINED: the client's error, sent at the end */
    uint16_t rl_infile_code;

    /* Prepared statements. */
    cl_stmt *stmts;
    uint32_t n_stmts;    /* in stmts, bounded by CLIENT_MAX_STMTS */
    size_t stmt_bytes;   /* what they hold (cl_stmt.charged), bounded by CLIENT_MAX_STMT_BYTES */
    uint32_t next_stmt_id;
    struct cl_stmt **stmt_slots; /* stmt.c's index of stmts by id, made at the first PREPARE */
    uint32_t last_prepared_id; /* MariaDB's statement id 0xFFFFFFFF means this one; 0: none */
    bool binary_rows; /* the command is an EXECUTE the proxy answers itself: binary rows */
    cl_stmt *stmt;        /* the statement of the current command */
    be_stmt *stmt_be;     /* JOB_STMT: the backend statement it runs as */
    struct vjob *vjob;    /* a fan-out, compare or __envs job under way */
    char *rl_vdbs_like;   /* SHOW DATABASES: add __envs and __compare (matching this) */
    bool rl_vdbs;
    bool stmt_reprepare;  /* JOB_STMT: preparing it again on this connection first */
    long long truncated_to; /* the last statement's results were cut to this many rows */

    /* Transactions (txn.c): BEGIN / SET TRANSACTION held back until the first statement
     * that touches data, and the environment whose connection is inside a transaction. */
    char *txn_begin, *txn_set;
    int txn_env; /* pool slot, -1: none */
    int txn_cmd; /* the current command's txn_kind (rewrite.h) while a transaction may be open */
    int job_words; /* 1 + txn_words_kind() of the command's text, 0: not known (txn.c) */
    bool dump_client; /* connect attribute program_name is mysqldump or mariadb-dump */
    /* A result that passes max_rows fails (ERR 1104) instead of ending cut short: a dump
     * program, or the mariadb/mysql command line in batch mode (no CLIENT_INTERACTIVE:
     * -e, -B, input or output redirected), whose output is a file nobody reads warnings in.
     * relay.c adds statements shaped as a dump's (SQL_NO_CACHE) from any client. */
    bool cap_fails;
    bool dump_listed; /* a dump program ran SHOW DATABASES (--all-databases): handle_use */
    bool ext_meta;    /* the client asked for MariaDB's extended metadata (JSON, ...) */
};

/* Takes ownership of an accepted socket on worker w. */
void client_accept(worker *w, int fd, const struct sockaddr *sa, int salen);
/* Takes ownership of fd, the worker's end of an internal session (HTTP API, MCP over HTTP),
 * and logs it in as login->user without a handshake: the client receives OK (or ERR) first,
 * then serves commands as for any MySQL client. */
void client_accept_internal(worker *w, int fd, const internal_login *login);
void client_free(client *c);
/* Adds c->timer to fire ms after now (now_ms() read by the caller), replacing any deadline
 * it had; client_timer_stop() deletes it. */
void client_timer_arm(client *c, uint64_t now, long long ms);
void client_timer_stop(client *c);
/* Copies into the client's input the bytes it still holds of its worker's read buffer (a
 * plain client's read lends them for the callback): before the callback ends, and before
 * anything reads the input itself. */
void client_input_own(client *c);

/* Writes one audit line for the current statement (no-op without audit_log). */
void client_audit(client *c, const char *outcome, long long rows, double ms, const char *error,
                  const char *event);
/* Bytes queued for the client and not yet taken by its socket (TLS: plain and encrypted). */
size_t client_out_queued(const client *c);
/* The row cap for this session's results in env: the account's override (`user limits`)
 * when it has one, else env's limits.max_rows. 0 = no cap. */
long long client_max_rows(const client *c, const cfg_env *env);
/* limits.statement_timeout for this session in env: the account's override, else env's. */
long long client_statement_timeout(const client *c, const cfg_env *env);
/* A result past max_rows fails (ERR 1104) instead of ending cut short for this client and
 * its current statement: a dump or batch export (client.c). */
bool client_cap_fails(const client *c);
/* Sends the client's packets built in b. */
void client_send(client *c, pbuf *b);
void client_send_err(client *c, uint16_t code, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sends an OK packet with no rows affected and the given server status. */
void client_send_ok(client *c, uint16_t status);
/* The command is finished: back to CL_IDLE and on to any pipelined command. */
void client_command_done(client *c);
/* Serves c->cmd, a COM_QUERY, as any query. */
void client_handle_query(client *c);
/* Serves c->cmd, a COM_QUERY whose text txn_words_kind() reads as kind: as
 * client_handle_query does, without the steps that cannot apply to such a text (routing
 * hints, named queries, rewrites of schema and user names, local and virtual answers, USE,
 * SHOW WARNINGS and SHOW DATABASES, SCHEMATA, LOAD DATA). */
void client_handle_txn_words(client *c, int kind);
/* Closes the client once what was sent to it is written (or a short deadline passed). */
void client_close_after_flush(client *c);
/* The backend connection the client holds for environment env, or NULL. */
backend *client_held(client *c, int env);
/* The backend held for the current command broke: drop it. */
void client_drop_backend(client *c, backend *b);
/* b broke or was closed under the session: drops it. When the session had state there (a
 * transaction, user variables, temporary tables, locks, other pins, long data), the
 * whole session is reset as a new server session would start (every held connection is
 * reset, variables and pins go) and note says so for the client's error ("" otherwise).
 * Returns whether state was lost. */
bool client_lose_backend(client *c, backend *b, char *note, size_t cap);
/* Whether the session has state on b that a new connection would not have. */
bool client_session_has_state(client *c, backend *b);

/* Reads the statement's routing hint; false after answering a malformed one (1064). */
bool client_parse_hint(client *c, const char *sql, size_t len, route_hint *h);
/* Resolves where the statement runs (c->route, c->job_db); on failure sends the error,
 * ends the command and returns false. */
bool client_resolve(client *c, const route_hint *h);
/* Gets the backend connection for c->route and makes it ready, then runs c->job. */
void client_start_job(client *c);
/* Checks c->cmd (COM_QUERY or COM_STMT_PREPARE text) against the read-only policy with b's
 * sql_mode; on refusal sends ERR 1290, ends the command and returns false. */
bool client_check_policy(client *c, backend *b, const char *sql, size_t len);
/* What the policy check needs to know about backend session b: its client character set,
 * the server's flavor, the current database (ps->stored is left NULL). */
void backend_policy_session(backend *b, policy_session *ps);
/* The policy check of sql on backend b: the read-only rules when read_only, else the
 * credential-store rule, with b's sql_mode, flavor, database and stored functions, under
 * every client character set b may be in (all must allow). Notes a character set the text
 * sets. Returns v->allowed. */
bool backend_policy_check(backend *b, const char *sql, size_t len, bool read_only,
                          policy_verdict *v);

/* A backend step of prepare_step() ended: on to the next step, or the error to the client. */
void client_prepare_done(backend *b, int rc, void *arg);

/* txn.c: transactions follow the session (see the file's comment). */
/* BEGIN, START TRANSACTION, SET TRANSACTION, and COMMIT / ROLLBACK of nothing, answered
 * while no backend is in a transaction: true when answered. COMMIT / ROLLBACK / BEGIN in an
 * open transaction are routed (through h) to the environment that holds it. */
bool txn_intercept(client *c, route_hint *h, const char *sql, size_t len);
/* txn_intercept() of a text whose txn_classify() in the default sql_mode is k. */
bool txn_intercept_kind(client *c, route_hint *h, const char *sql, size_t len, int k);
/* Whether sql (without a routing hint) is BEGIN, START TRANSACTION, SET TRANSACTION, COMMIT
 * or ROLLBACK: prepared, such a statement is answered as its text form is (txn_intercept),
 * not prepared on a backend, where it would begin the transaction before its environment
 * is known. */
bool txn_is_control(const char *sql, size_t len);
/* Before the command runs on b: begins the held-back transaction there when the command
 * touches data, or refuses a statement for another environment than the open transaction's.
 * True: run the command now; false: a step was started (prepare_step runs again) or the
 * command was answered. */
bool txn_ready(client *c, backend *b);
/* A response from b ended with status: notes where a transaction is open; returns the status
 * to show the client. */
uint16_t txn_status(client *c, backend *b, uint16_t status);
/* USE of environment e: false after refusing it (a transaction is open elsewhere). */
bool txn_may_move(client *c, const cfg_env *e);
void txn_reset(client *c);
void txn_backend_gone(client *c, backend *b);

/* schema_names.c: `db@env` schema names in a COM_QUERY or COM_STMT_PREPARE (rewrite.c):
 * c->cmd is rewritten and h made to route the statement to that environment. False after
 * answering an error. */
bool client_rewrite_schemas(client *c, route_hint *h);
/* schema_names.c: after routing, a SELECT that reads information_schema.SCHEMATA gets the
 * virtual schemas' rows too (rewrite_schemata_virtual; not for dump tools, MariaDB backends
 * only). False when the client was answered (an error). */
bool client_rewrite_schemata(client *c, const route_hint *h);
/* schema_names.c: USER(), CURRENT_USER() and their synonyms inside a statement name the
 * envproxy account (rewrite_user_calls), where the session's text can be read for certain.
 * False when the client was answered (an error). */
bool client_rewrite_users(client *c, const route_hint *h);
/* Whether the session's character sets (handshake, SET NAMES) are ones the lexer reads as
 * the server does. */
bool client_charset_readable(client *c);
/* http/mcp.c: whether auth (for the scramble) is the answer of a live MCP ticket of user. */
bool http_mcp_ticket_ok(const char *user, const uint8_t *scramble, const uint8_t *auth,
                        size_t auth_len, bool sha2);

/* local.c: statements about the proxy itself. Returns true when it answered (or refused)
 * the statement; the command is then finished. */
bool local_answer(client *c, const char *sql, size_t len);
/* Whether local_answer() would answer the statement (nothing is sent). */
bool local_takes(const char *sql, size_t len);
/* SHOW PROCESSLIST's view of a session: a command starts (cmd is its command byte, the
 * statement is c->cmd) / the session is idle again. */
void local_ps_begin(client *c, uint8_t cmd);
void local_ps_idle(client *c, uint64_t now);
void local_kill(client *c, uint32_t id, bool query_only);
void local_register(client *c);
void local_unregister(client *c);
/* Runs on w (WQ_KILL): kills the statement or the connection of client id, if still there. */
void local_kill_on_worker(worker *w, uint32_t id, bool query_only);

/* virtual.c, compare.c: __envs, __compare, fan-out and compare hints. */
struct vjob;
/* Takes a COM_QUERY that fans out, compares, or names a virtual schema (true), else false. */
bool virtual_statement(client *c, const route_hint *h, const char *sql, size_t len);
/* Whether virtual_statement() would take it (nothing is sent, nothing starts). */
bool virtual_takes(client *c, const route_hint *h, const char *sql, size_t len);
/* Whether name is one of the proxy's own schemas (__envs, __compare, __queries), any case. */
bool virtual_is_schema(const char *name);
bool virtual_is_show_databases(const char *sql, size_t len, char **like);
void virtual_client_gone(client *c);
struct vq_table;

/* stmt.c: prepared statements. */
void stmt_command(client *c, uint8_t cmd);
/* Adds st to the client's statements (it is the one MariaDB's id 0xFFFFFFFF names now). */
void stmt_register(client *c, cl_stmt *st);
/* stmt_local.c: statements the proxy answers itself (virtual schemas, local answers). */
void stmt_local_prepare(client *c, const char *sql, size_t len);
void stmt_local_execute(client *c, cl_stmt *st);
void stmt_local_long_data(client *c, cl_stmt *st);
void stmt_local_reset(cl_stmt *st);
void stmt_local_free(cl_stmt *st);
/* The backend is ready for JOB_PREPARE / JOB_STMT. */
void stmt_run(client *c);
/* relay.c reports the end of a COM_STMT_PREPARE response (its id and counts are in c->stmt). */
void stmt_prepared(client *c, bool ok);
void stmt_free_all(client *c);
/* Frees the statement of a PREPARE that ends (or whose client leaves) before the backend
 * said OK: a connection that could not be had, a session setup that failed, a client gone. */
void stmt_drop_pending(client *c);
/* The relay of a PREPARE (or of its re-prepare) failed: a statement not yet registered is
 * dropped. */
void stmt_relay_failed(client *c);
/* The long data sent for the client's statements is gone (its connection was lost). */
void stmt_forget_long_data(client *c);
void stmt_exec_done(client *c);
/* An ERR packet's payload p that the running no-reply command (SEND_LONG_DATA) would have
 * sent: kept on its statement for the next EXECUTE (the first one only). */
void stmt_defer_error(client *c, const uint8_t *p, size_t len);
/* Forgets the backend statements of b (the server dropped them: reset, change user, close). */
void stmt_cache_clear(backend *b);

/* session.c: session variables carried from one backend connection to the others. */
/* Whether sql may assign a session_track_ variable (read in mode, or in every mode when
 * it is unknown). Such a statement is run, but what it set is not kept: a server whose
 * tracking list changes in a statement reports none of that statement's changes, so the
 * connection's session is put back afterwards (relay_finish, session_after_tracking). */
bool session_sets_tracking(const char *sql, size_t len, const sql_mode_flags *mode);
/* Whether sql may assign a variable: "SET" anywhere in its bytes, in any case (read as
 * bytes, not tokens, so that no reading of the text can hide one). A statement that does
 * and fails has its connection's sql_mode read again (the ERR packet reports nothing). */
bool session_may_set(const char *sql, size_t len);
/* After a statement that may have set session_track_ variables ran on b. */
void session_after_tracking(client *c, backend *b);
/* Frees the values of vars[0..*n) and empties the set. */
void session_vars_clear(sess_var *vars, int *n);
/* Notes the sql_mode flags an OK or EOF packet's server status shows (NO_BACKSLASH_ESCAPES
 * from any server, ANSI_QUOTES from MariaDB). */
void session_note_status(backend *b, uint16_t status);
/* Records the variable changes of an OK packet's session-state block on b, and on c when
 * the statement ran at the session's position. */
void session_note_changes(client *c, backend *b, const uint8_t *state, size_t len);
/* The next SET the backend needs to match the client, in sql (cap bytes); false when none.
 * *var says which, for session_applied once it succeeded. */
bool session_next_set(client *c, backend *b, char *sql, size_t cap, int *var);
void session_applied(client *c, backend *b, int var);
/* Before the character set step: when b holds a character set variable an earlier session
 * set and c does not want, b->charset is cleared so that SET NAMES runs again. */
void session_settle_charset(client *c, backend *b);
/* SET NAMES is about to set every character set variable: b's record of them goes. */
void session_forget_charset(backend *b);
/* Pins the session (with the reason) when sql holds state that lives in its backend
 * session: user variables, temporary tables, locks, SQL-level PREPARE, LAST_INSERT_ID(),
 * FOUND_ROWS(), ROW_COUNT(), HANDLER, XA, savepoints, CALL and calls of the backend's stored
 * functions (stored: their names, or NULL), which may hold any of it. sql is read in the session's mode and
 * character set and in every quoting mode; in a character set the lexer does not read, the
 * bytes decide. */
void session_check_pins(client *c, const sql_mode_flags *mode, sql_charset cs,
                        const sql_name_set *stored, const char *sql, size_t len);
void session_pin(client *c, const char *reason);
/* Whether sql (read as session_check_pins reads it) holds XA or SET ROLE: what such
 * statements leave in a backend session a reset does not clear. */
bool session_defies_reset(const sql_mode_flags *mode, sql_charset cs, const char *sql, size_t len);
/* After a command: gives the backend connection back when nothing pins the session. */
void session_release(client *c);

/* relay.c: queues a command's payload on b->out, framed from sequence id 0 (cut into
 * physical packets at PKT_MAX_PAYLOAD, see pkt_part_count). */
void relay_queue_command(backend *b, const uint8_t *payload, size_t len);
/* relay.c: send the command to c->be and relay its response. */
void relay_start(client *c, relay_state first);
/* Moves the response packets the relay gathered to the client's socket buffer. */
void relay_flush_out(client *c);
/* Like relay_start, with the given payload instead of c->cmd. */
void relay_send(client *c, relay_state first, const uint8_t *payload, size_t len);
/* Called when the client's output drained below the low-water mark. */
void relay_resume(client *c);
/* The client's timer fired while the relay runs: statement_timeout passed (the query is
 * killed), or the grace time after an interruption did (the backend connection is closed). */
void relay_timeout(client *c);
/* The worker's deadline watch (see worker.deadline_due): a statement of w runs until
 * deadline_ms (monotonic). On w's thread. */
void relay_note_deadline(worker *w, uint64_t deadline_ms);
/* On w's thread (WQ_DEADLINES): statements past their deadline are killed or their
 * connections closed; the earliest deadline still ahead is noted. */
void relay_check_deadlines(worker *w);
/* The main loop's deadline watch, every DEADLINE_WATCH_MS: posts WQ_DEADLINES to each worker
 * whose earliest noted deadline passed. */
#define DEADLINE_WATCH_MS 25
enum { RLI_NONE, RLI_TIMEOUT, RLI_KILLED };
/* Interrupts the running statement (RLI_TIMEOUT or RLI_KILLED): kills it on the backend,
 * drops the rest of its result, and holds the deadline even when the backend does not
 * answer. Returns false when no statement runs. */
bool relay_interrupt(client *c, int why);
/* The client goes away mid-response: a kill under way no longer reports to it. */
void relay_client_gone(client *c);
/* LOAD DATA LOCAL INFILE: where the client's file transfer is (c->rl_infile). */
enum { INF_NONE, INF_SENDING, INF_DRAIN, INF_SENT, INF_DECLINED };
/* Whether the client's input is the file of a LOAD DATA LOCAL INFILE (not commands). */
bool relay_reads_file(const client *c);
/* Moves the client's file packets to the backend (or drops them, INF_DRAIN), as far as the
 * backend's output takes them. */
void relay_file_input(client *c);

/* result.c: result sets the proxy answers itself. */
typedef struct {
    const char *name;
    uint8_t type; /* PKT_TYPE_* */
} result_col;
/* Sends a whole text result set: cells holds nrows * ncols values, row by row (NULL: SQL
 * NULL). status goes into the final EOF/OK. */
void result_send(client *c, const result_col *cols, int ncols, const char *const *cells,
                 int nrows, uint16_t warnings);

/* ---- workers, proxy (worker.c, proxy.c) ------------------------------------------------- */

typedef struct kill_request {
    uint32_t id;
    bool query_only;
} kill_request;

/* An internal session of the HTTP front door (http/sql.c): the account was authenticated
 * by the front door; the worker's client starts logged in, without a handshake. */
struct internal_login {
    char user[ROUTE_NAME_MAX + 1];
    char addr[64];                         /* the HTTP client's address, "host:port" */
    char host[48];
    char via[8];                           /* "http" or "mcp" */
    char login_db[2 * ROUTE_NAME_MAX + 2]; /* "db@env", "@env", or "" */
};

typedef struct accepted_fd {
    internal_login *login; /* NULL for a MySQL client; else owned, freed by the worker */
    int fd;
    struct sockaddr_storage sa;
    int salen;
} accepted_fd;

/* A request to a worker from another thread. The worker's loop is not locked (libevent's
 * EVENT_BASE_FLAG_NOLOCK): other threads never touch its events; they queue one of these. */
typedef enum {
    WQ_NONE,         /* withdrawn (worker_forget_waiter) */
    WQ_ACCEPT,       /* a new client socket: accept */
    WQ_KILL,         /* KILL from another worker: kill */
    WQ_WAKE,         /* a pool waiter's state left PW_QUEUED: waiter */
    WQ_UNPARK,       /* clients wait for connections parked on this loop: pool */
    WQ_FREE_BACKEND, /* an expired idle connection parked on this loop: backend */
    WQ_DEADLINES,    /* a statement's deadline passed: relay_check_deadlines */
    WQ_STOP,         /* shutdown: leave the loop */
} wq_kind;

typedef struct wq_item {
    wq_kind kind;
    union {
        accepted_fd accept;
        kill_request kill;
        pool_waiter *waiter;
        pool *pool;
        backend *backend;
    } u;
} wq_item;

/* Bytes one read of a client's socket takes at most. */
#define WORKER_READ_BUF 16384

struct worker {
    proxy *p;
    int index;
    pthread_t thread;
    struct event_base *base; /* EVENT_BASE_FLAG_NOLOCK: only this worker's thread uses it */
    /* Requests from other threads: a FIFO under wq_mu, and an eventfd the loop reads. The
     * eventfd is written when the queue stops being empty (wq_signalled false). */
    int wq_fd;
    struct event *wq_ev;
    pthread_mutex_t wq_mu;
    wq_item *wq;
    int wq_head, wq_len, wq_cap;
    bool wq_signalled;
    client *clients;
    int n_clients;
    struct audit_ring *audit; /* this thread's ring of the audit log, or NULL */
    struct env_metrics *metrics; /* this thread's counters, PROXY_MAX_SLOTS of them */
    /* Statement deadlines (statement_timeout) are not timers of the worker's loop, whose
     * every turn then computed a wait: the worker notes the earliest one here
     * (relay_note_deadline), the main loop's deadline watch posts WQ_DEADLINES once it has
     * passed, and the worker looks at its clients (relay_check_deadlines). Monotonic ms; 0:
     * none. */
    _Atomic uint64_t deadline_due;
    atomic_bool deadline_posted; /* WQ_DEADLINES is queued and not yet handled */
    /* A plain client's read into an empty input lands here and is lent to its input for
     * the callback (client_sock_read_cb): no chain is allocated and freed per command. */
    unsigned char read_buf[WORKER_READ_BUF];
    atomic_ullong stmts_by_door[3];
};

/* The account store's current content, shared by reference. */
typedef struct acct_ref {
    acct_snapshot *snap;
    atomic_int refs;
} acct_ref;

struct proxy {
    _Atomic(config *) cfg;   /* the running configuration (SIGHUP replaces it) */
    config **old_cfgs;       /* replaced ones: sessions may still point into them */
    uint64_t *old_cfg_ms;    /* when each was replaced */
    int n_old_cfgs;
    struct event *accept_resume; /* re-enables the listeners after an accept failure */
    char *cfg_path;
    struct event_base *base; /* the main loop: accept, signals, maintenance */
    worker *workers;
    int n_workers;
    unsigned next_worker;
    struct evconnlistener **listeners;
    int n_listeners;
    /* One slot per environment name ever configured, in order of appearance. */
#define PROXY_MAX_SLOTS 256
    pool *pools[PROXY_MAX_SLOTS];
    health health[PROXY_MAX_SLOTS];
    atomic_int n_slots;
    /* Per slot: the configuration a removed environment's pool still points into (pinned). */
    config *removed_cfg[PROXY_MAX_SLOTS];
    SSL_CTX *tls_ctx;

    acct_store *store;
    pthread_mutex_t acct_mu;
    acct_ref *acct_cur;
    atomic_int acct_gen;
    long long acct_version;
    bool acct_file_trouble; /* the store's file is gone or unreadable (said once) */
    struct acct_thread *acct_thread; /* the only user of store once running (acct_thread.h) */

    pthread_mutex_t version_mu;
    char server_version[96]; /* the default environment's version, "" until known */

    atomic_bool stopping;
    pthread_mutex_t reg_mu; /* logged-in clients by id, for KILL */
#define PROXY_REGISTRY 1024
    client *registry[PROXY_REGISTRY];
    atomic_uint next_conn_id;
    atomic_ullong clients_total;
    atomic_llong clients_current;
    atomic_ullong logins_refused;
    atomic_llong busy_clients; /* clients with a command under way */
    atomic_bool draining;      /* SIGTERM: no new statements, waiting for running ones */
    env_metrics metrics[PROXY_MAX_SLOTS];
    atomic_ullong stmts_by_door[3];  /* statements that came in by mysql, http, mcp */
    atomic_ullong http_api_status[6]; /* /api/v1 and /mcp answers by status class: 1xx..5xx */
    struct evhttp *http;
    struct event *drain_timer;
    uint64_t drain_deadline_ms;
    struct audit *audit;
    struct event *sig_int, *sig_term, *sig_hup, *tick;
    struct event *deadline_watch; /* deadline_watch_cb, every DEADLINE_WATCH_MS */
    struct event *gate; /* start-up: listeners open after the first health checks */
    uint64_t gate_deadline_ms;
};

int env_index(const proxy *p, const cfg_env *e);
/* The newest configuration entry of a slot. */
const cfg_env *proxy_slot_env(proxy *p, int slot);
/* The running configuration, pinned for a session until proxy_cfg_put. */
config *proxy_cfg_get(proxy *p);
void proxy_cfg_put(config *cfg);
/* A client connection admitted by the main loop from host ended. */
void proxy_conn_gone(proxy *p, const char *host);
/* Counts a logged-in client of account user; false (not counted) when the account already
 * has max_connections_per_account of them. proxy_acct_gone undoes a count. */
bool proxy_acct_admit(const config *cfg, const char *user);
void proxy_acct_gone(const char *user);
acct_ref *proxy_acct_get(proxy *p);
void proxy_acct_put(acct_ref *r);
/* The store was written by this process: publish the new content now (store's thread). */
void proxy_accounts_changed(proxy *p);
/* Publishes the store's content again if another process changed it or the file was
 * replaced (store's thread, every second: acct_thread.c). */
void proxy_accounts_poll(proxy *p);
void proxy_note_version(proxy *p, const cfg_env *e, const char *version);
void proxy_server_version(proxy *p, char *out, size_t cap);

int worker_start(worker *w);
void worker_stop(worker *w);
void worker_hand_fd(worker *w, int fd, const struct sockaddr *sa, int salen);
/* Hands one end of a socketpair to w as an internal session; w frees login. */
void worker_hand_internal(worker *w, int fd, internal_login *login);
/* Queues it for w's loop (any thread). */
void worker_post(worker *w, const wq_item *it);
/* Withdraws the WQ_WAKE requests for pw queued for w. Called with pw's pool lock held. */
void worker_forget_waiter(worker *w, pool_waiter *pw);
/* The worker whose thread calls, or NULL (the main thread, others). */
worker *worker_self(void);
/* The worker whose loop is base, or NULL. */
worker *worker_of_base(proxy *p, struct event_base *base);

/* tls.c */
SSL_CTX *tls_server_ctx(const config *c, char *err, size_t errlen);

/* Monotonic milliseconds. */
uint64_t now_ms(void);

/* Replaces every enc: backend password of cfg with its plain text (errors are logged, naming
 * the environment). Returns 0, or -1 when any could not be decrypted. */
int proxy_decrypt_passwords(config *cfg);

/* cli_check.c: `envproxy check` against the backends: reachable, and whether each backend
 * account can change things (warnings only). */
void cli_check_backends(config *cfg);

/* Runs the proxy until SIGTERM or SIGINT. Returns the exit code. */
int proxy_run(const char *config_path);

#endif
