/* proxy.c: start-up, the main loop (accept, signals, maintenance) and the worker threads. */
#include "audit.h"
#include "acct_thread.h"
#include "envproxy.h"
#include "resolve.h"
#include "log.h"
#include "secret.h"

#include <arpa/inet.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int env_index(const proxy *p, const cfg_env *e)
{
    return e->slot;
}

const cfg_env *proxy_slot_env(proxy *p, int slot)
{
    return p->pools[slot]->env;
}

/* Gives every environment of cfg the slot of its name, opening new slots (pool, health
 * checker, counters) for new names. Main loop only. Returns -1 when slots run out. */
static int assign_slots(proxy *p, config *cfg)
{
    for (int i = 0; i < cfg->n_envs; i++) {
        cfg_env *e = &cfg->envs[i];
        int n = atomic_load(&p->n_slots), slot;
        for (slot = 0; slot < n; slot++)
            if (strcmp(p->pools[slot]->env->name, e->name) == 0)
                break;
        if (slot == n) {
            if (n == PROXY_MAX_SLOTS) {
                log_error("more than %d environments over the proxy's life: restart it",
                          PROXY_MAX_SLOTS);
                return -1;
            }
            p->pools[slot] = pool_new(p, e, slot);
            health_init(&p->health[slot], p->pools[slot]);
            atomic_store(&p->n_slots, n + 1); /* published once ready */
        }
        e->slot = slot;
    }
    return 0;
}

/* Points every slot at cfg's entry for its name, or marks it removed. Main loop only. */
static void retarget_slots(proxy *p, config *cfg)
{
    int n = atomic_load(&p->n_slots);
    for (int slot = 0; slot < n; slot++) {
        pool *pl = p->pools[slot];
        const cfg_env *found = NULL;
        for (int i = 0; i < cfg->n_envs && !found; i++)
            if (cfg->envs[i].slot == slot)
                found = &cfg->envs[i];
        if (found) {
            /* The target first: a connection opened in between is merely not reused. */
            atomic_store(&pl->target, backend_target(found));
            atomic_store(&pl->env, found);
            atomic_store(&pl->removed, false);
            if (p->removed_cfg[slot]) {
                proxy_cfg_put(p->removed_cfg[slot]);
                p->removed_cfg[slot] = NULL;
            }
        } else if (!atomic_load(&pl->removed)) {
            log_info("env %s: removed from the configuration; its connections drain",
                     pl->env->name);
            atomic_store(&pl->removed, true);
            /* The pool keeps its entry of the running configuration: keep that alive. */
            p->removed_cfg[slot] = proxy_cfg_get(p);
        }
    }
}

/* ---- configurations in use -------------------------------------------------------------- */

config *proxy_cfg_get(proxy *p)
{
    config *c = atomic_load(&p->cfg);
    atomic_fetch_add(&c->users, 1);
    return c;
}

void proxy_cfg_put(config *c)
{
    atomic_fetch_sub(&c->users, 1);
}

/* A replaced configuration is freed once no session uses it and a grace period passed: a
 * worker may have read a pool's entry of it just before the pool moved on. */
#define CFG_GRACE_MS 5000

static void free_unused_configs(proxy *p, uint64_t now)
{
    int k = 0, freed = 0;
    for (int i = 0; i < p->n_old_cfgs; i++) {
        config *c = p->old_cfgs[i];
        if (atomic_load(&c->users) == 0 && now - p->old_cfg_ms[i] >= CFG_GRACE_MS) {
            config_free(c);
            freed++;
            continue;
        }
        p->old_cfgs[k] = c;
        p->old_cfg_ms[k++] = p->old_cfg_ms[i];
    }
    p->n_old_cfgs = k;
    if (freed) {
        log_debug("freed %d replaced configuration(s); %d still in use", freed, k);
#ifdef __GLIBC__
        malloc_trim(0); /* a configuration can be large: give the pages back */
#endif
    }
}

/* ---- admission: client connections by address -------------------------------------------- */

#define HOST_BUCKETS 1024

typedef struct host_count {
    struct host_count *next;
    int n;
    char host[48];
} host_count;

static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static host_count *conns_by_host[HOST_BUCKETS];
static long long conns_open;

static unsigned host_hash(const char *h)
{
    unsigned v = 2166136261u;
    for (; *h; h++)
        v = (v ^ (unsigned char)*h) * 16777619u;
    return v % HOST_BUCKETS;
}

static host_count **host_find(const char *host)
{
    host_count **pp = &conns_by_host[host_hash(host)];
    while (*pp && strcmp((*pp)->host, host) != 0)
        pp = &(*pp)->next;
    return pp;
}

void proxy_conn_gone(proxy *p, const char *host)
{
    pthread_mutex_lock(&conns_mu);
    host_count **pp = host_find(host);
    if (*pp && --(*pp)->n == 0) {
        host_count *h = *pp;
        *pp = h->next;
        free(h);
    }
    conns_open--;
    pthread_mutex_unlock(&conns_mu);
}

/* The client limit in effect: max_client_connections, or with 0 what the descriptor limit
 * leaves after the backend pools, the health checkers and a margin. */
static long long client_limit(const config *cfg)
{
    if (cfg->max_client_connections > 0)
        return cfg->max_client_connections;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1000000;
    long long backends = 0;
    for (int i = 0; i < cfg->n_envs; i++)
        backends += cfg->envs[i].pool.max + 2; /* + the health checker, a KILL connection */
    long long n = (long long)rl.rlim_cur - backends - 64;
    return n < 16 ? 16 : n;
}

/* Counts a new client from host, or returns the reason it is refused (ERR 1040). */
static const char *conn_admit(const config *cfg, const char *host, char *why, size_t cap)
{
    long long limit = client_limit(cfg);
    pthread_mutex_lock(&conns_mu);
    host_count **pp = host_find(host);
    const char *refused = NULL;
    if (conns_open >= limit) {
        snprintf(why, cap, "Too many connections: envproxy serves at most %lld clients%s",
                 limit, cfg->max_client_connections > 0 ? " (max_client_connections)"
                                                        : " (the descriptor limit)");
        refused = why;
    } else if (cfg->max_connections_per_host > 0 && *pp &&
               (*pp)->n >= cfg->max_connections_per_host) {
        snprintf(why, cap,
                 "Too many connections: envproxy serves at most %d clients from host '%s' "
                 "(max_connections_per_host)",
                 cfg->max_connections_per_host, host);
        refused = why;
    } else {
        if (!*pp) {
            host_count *h = calloc(1, sizeof(*h));
            if (!h)
                abort();
            snprintf(h->host, sizeof(h->host), "%s", host);
            *pp = h;
        }
        (*pp)->n++;
        conns_open++;
    }
    pthread_mutex_unlock(&conns_mu);
    return refused;
}

/* ---- admission: logged-in client connections by account ----------------------------------- */

typedef struct acct_count {
    struct acct_count *next;
    int n;
    char user[ROUTE_NAME_MAX + 1];
} acct_count;

static acct_count *conns_by_acct[HOST_BUCKETS];

static acct_count **acct_count_find(const char *user)
{
    acct_count **pp = &conns_by_acct[host_hash(user)];
    while (*pp && strcmp((*pp)->user, user) != 0)
        pp = &(*pp)->next;
    return pp;
}

bool proxy_acct_admit(const config *cfg, const char *user)
{
    bool ok = true;
    pthread_mutex_lock(&conns_mu);
    acct_count **pp = acct_count_find(user);
    if (cfg->max_connections_per_account > 0 && *pp &&
        (*pp)->n >= cfg->max_connections_per_account) {
        ok = false;
    } else {
        if (!*pp) {
            acct_count *a = calloc(1, sizeof(*a));
            if (!a)
                abort();
            snprintf(a->user, sizeof(a->user), "%s", user);
            *pp = a;
        }
        (*pp)->n++;
    }
    pthread_mutex_unlock(&conns_mu);
    return ok;
}

void proxy_acct_gone(const char *user)
{
    pthread_mutex_lock(&conns_mu);
    acct_count **pp = acct_count_find(user);
    if (*pp && --(*pp)->n == 0) {
        acct_count *a = *pp;
        *pp = a->next;
        free(a);
    }
    pthread_mutex_unlock(&conns_mu);
}

/* Answers a client that is not served with an error packet in place of the greeting
 * (sequence id 0, as a server does), then closes the socket. */
static void refuse_fd(int fd, uint16_t code, const char *state, const char *msg)
{
    pbuf b;
    pbuf_init(&b);
    uint8_t seq = 0;
    pkt_build_err(&b, &seq, code, state, "%s", msg);
    /* The socket's buffer is empty: a small packet is taken whole or not at all. */
    ssize_t n = send(fd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    pbuf_free(&b);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* ---- accounts ---------------------------------------------------------------------------- */

acct_ref *proxy_acct_get(proxy *p)
{
    pthread_mutex_lock(&p->acct_mu);
    acct_ref *r = p->acct_cur;
    atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&p->acct_mu);
    return r;
}

void proxy_acct_put(acct_ref *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        acct_snapshot_free(r->snap);
        free(r);
    }
}

/* Reads the store again and publishes the new content. */
static int reload_accounts(proxy *p)
{
    char err[256];
    acct_snapshot *snap = acct_snapshot_load(p->store, err, sizeof(err));
    if (!snap) {
        log_error("cannot read the account store: %s", err);
        return -1;
    }
    acct_ref *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->snap = snap;
    atomic_init(&r->refs, 1);
    pthread_mutex_lock(&p->acct_mu);
    acct_ref *old = p->acct_cur;
    p->acct_cur = r;
    pthread_mutex_unlock(&p->acct_mu);
    atomic_fetch_add(&p->acct_gen, 1);
    if (old) {
        proxy_acct_put(old);
        log_info("account store reloaded: %d account(s)", snap->n);
    }
    return 0;
}

/* The store's file was replaced (restored from a backup, deployed by mv): the open one
 * would go on serving the old accounts, a removed one included, with no sign of it. On the
 * store's thread, as everything below that reads the store. */
static void check_store_file(proxy *p)
{
    int r = acct_replaced(p->store);
    if (r == 0) {
        p->acct_file_trouble = false;
        return;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s", acct_path(p->store)); /* p->store may be closed below */
    if (r < 0) {
        if (!p->acct_file_trouble)
            log_error("account store %s: the file is gone; the accounts read last stay in use "
                      "until a store is there again",
                      path);
        p->acct_file_trouble = true;
        return;
    }
    char err[256];
    acct_store *next = acct_open(path, err, sizeof(err));
    if (!next) {
        if (!p->acct_file_trouble)
            log_error("account store %s was replaced by a file that cannot be read (%s); the "
                      "accounts read last stay in use",
                      path, err);
        p->acct_file_trouble = true;
        return;
    }
    acct_close(p->store);
    p->store = next;
    p->acct_file_trouble = false;
    p->acct_version = acct_data_version(next);
    log_info("account store %s was replaced by another file: reading it", path);
    reload_accounts(p);
}

void proxy_accounts_poll(proxy *p)
{
    check_store_file(p);
    long long v = acct_data_version(p->store);
    if (v >= 0 && v != p->acct_version) {
        p->acct_version = v;
        reload_accounts(p);
    }
}

/* SQLite's data_version does not change for the connection's own commits: read it all. */
void proxy_accounts_changed(proxy *p)
{
    long long v = acct_data_version(p->store);
    if (v >= 0)
        p->acct_version = v;
    reload_accounts(p);
}

/* ---- server version ------------------------------------------------------------------------ */

void proxy_note_version(proxy *p, const cfg_env *e, const char *version)
{
    if (!version || strcmp(e->name, p->cfg->default_environment) != 0)
        return;
    pthread_mutex_lock(&p->version_mu);
    snprintf(p->server_version, sizeof(p->server_version), "%s", version);
    pthread_mutex_unlock(&p->version_mu);
}

/* The version in the handshake: the default environment's own, then "-envproxy". MariaDB
 * 10 and later are announced as "5.5.5-<version>", as MariaDB itself does, so that clients
 * that parse the version as MySQL's still work. */
void proxy_server_version(proxy *p, char *out, size_t cap)
{
    char v[96];
    pthread_mutex_lock(&p->version_mu);
    snprintf(v, sizeof(v), "%s", p->server_version);
    pthread_mutex_unlock(&p->version_mu);
    if (!v[0])
        snprintf(v, sizeof(v), "8.0.0");
    bool mariadb = strstr(v, "MariaDB") != NULL && atoi(v) >= 10;
    snprintf(out, cap, "%s%s-envproxy", mariadb ? "5.5.5-" : "", v);
}

/* Asks the default environment for its version once at start-up (bounded by its
 * connect_timeout). Failure is not fatal: the version is learnt from the first connection. */
static void probe_version(proxy *p)
{
    const cfg_env *e = config_find_env(p->cfg, p->cfg->default_environment);
    if (!e)
        return;
    MYSQL *m = mysql_init(NULL);
    unsigned timeout = (unsigned)((e->pool.connect_timeout_ms + 999) / 1000);
    unsigned zero = 0;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &zero);
    if (e->tls_mode != BTLS_DISABLED)
        mysql_ssl_set(m, NULL, NULL, e->tls_ca, NULL, NULL);
    char addr[RESOLVE_ADDR_MAX], err[256];
    if (resolve_get(e->host, addr, sizeof(addr), err, sizeof(err)) != 0) {
        log_warn("env %s: not reachable at start-up: %s", e->name, err);
        mysql_close(m);
        return;
    }
    if (mysql_real_connect(m, addr, e->user, e->password, NULL, (unsigned)e->port, NULL, 0)) {
        proxy_note_version(p, e, mysql_get_server_info(m));
        log_info("env %s: reachable, server version %s", e->name, mysql_get_server_info(m));
    } else {
        log_warn("env %s: not reachable at start-up: %s", e->name, mysql_error(m));
    }
    mysql_close(m);
}

/* ---- workers ----------------------------------------------------------------------------- */

/* A worker's loop is not locked: every other thread reaches it through its queue. */

static _Thread_local worker *self_worker;

worker *worker_self(void)
{
    return self_worker;
}

worker *worker_of_base(proxy *p, struct event_base *base)
{
    for (int i = 0; i < p->n_workers; i++)
        if (p->workers[i].base == base)
            return &p->workers[i];
    return NULL;
}

void worker_post(worker *w, const wq_item *it)
{
    pthread_mutex_lock(&w->wq_mu);
    if (w->wq_len == w->wq_cap) {
        if (w->wq_head > 0) { /* room at the front: move the pending ones there */
            memmove(w->wq, w->wq + w->wq_head, (size_t)(w->wq_len - w->wq_head) * sizeof(*w->wq));
            w->wq_len -= w->wq_head;
            w->wq_head = 0;
        }
        if (w->wq_len == w->wq_cap) {
            int cap = w->wq_cap ? w->wq_cap * 2 : 64;
            wq_item *n = realloc(w->wq, (size_t)cap * sizeof(*n));
            if (!n)
                abort();
            w->wq = n;
            w->wq_cap = cap;
        }
    }
    w->wq[w->wq_len++] = *it;
    bool signal = !w->wq_signalled;
    w->wq_signalled = true;
    pthread_mutex_unlock(&w->wq_mu);
    if (signal) {
        uint64_t one = 1;
        /* Fails only when the counter is near overflow, and then the loop is woken anyway. */
        ssize_t n = write(w->wq_fd, &one, sizeof(one));
        (void)n;
    }
}

void worker_forget_waiter(worker *w, pool_waiter *pw)
{
    pthread_mutex_lock(&w->wq_mu);
    for (int i = w->wq_head; i < w->wq_len; i++)
        if (w->wq[i].kind == WQ_WAKE && w->wq[i].u.waiter == pw)
            w->wq[i].kind = WQ_NONE;
    pthread_mutex_unlock(&w->wq_mu);
}

/* Takes the oldest request off w's queue. False when it is empty: then the next worker_post
 * writes the eventfd again. */
static bool wq_pop(worker *w, wq_item *out)
{
    pthread_mutex_lock(&w->wq_mu);
    if (w->wq_head == w->wq_len) {
        w->wq_head = w->wq_len = 0;
        w->wq_signalled = false;
        pthread_mutex_unlock(&w->wq_mu);
        return false;
    }
    *out = w->wq[w->wq_head++];
    pthread_mutex_unlock(&w->wq_mu);
    return true;
}

/* The worker's queue became non-empty. One request at a time: running one may withdraw
 * others (a client freed by it withdraws its wake-ups under the queue's lock). */
static void wq_cb(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v)); /* before the queue is read: no wake-up is lost */
    (void)n;
    wq_item it;
    while (wq_pop(w, &it)) {
        switch (it.kind) {
        case WQ_NONE:
            break;
        case WQ_ACCEPT:
            if (it.u.accept.login) {
                client_accept_internal(w, it.u.accept.fd, it.u.accept.login);
                free(it.u.accept.login);
            } else {
                client_accept(w, it.u.accept.fd, (struct sockaddr *)&it.u.accept.sa,
                              it.u.accept.salen);
            }
            break;
        case WQ_KILL:
            local_kill_on_worker(w, it.u.kill.id, it.u.kill.query_only);
            break;
        case WQ_WAKE:
            /* Withdrawn before its client goes (pool_cancel, pool_waiter_gone): valid. */
            event_active(it.u.waiter->wake, EV_READ, 0);
            break;
        case WQ_UNPARK:
            pool_unpark_for_waiters(it.u.pool, w->base);
            break;
        case WQ_FREE_BACKEND:
            backend_free(it.u.backend);
            break;
        case WQ_DEADLINES:
            relay_check_deadlines(w);
            break;
        case WQ_STOP:
            event_base_loopexit(w->base, NULL);
            break;
        }
    }
}

/* Drops what is still queued for a stopped worker: sockets are closed; connections named by
 * requests are freed with their pool. */
static void wq_discard(worker *w)
{
    pthread_mutex_lock(&w->wq_mu);
    for (int i = w->wq_head; i < w->wq_len; i++) {
        if (w->wq[i].kind != WQ_ACCEPT)
            continue;
        close(w->wq[i].u.accept.fd);
        free(w->wq[i].u.accept.login);
    }
    w->wq_head = w->wq_len = 0;
    pthread_mutex_unlock(&w->wq_mu);
}

void worker_hand_internal(worker *w, int fd, internal_login *login)
{
    wq_item it;
    memset(&it, 0, sizeof(it));
    it.kind = WQ_ACCEPT;
    it.u.accept.fd = fd;
    it.u.accept.login = login;
    worker_post(w, &it);
}

void worker_hand_fd(worker *w, int fd, const struct sockaddr *sa, int salen)
{
    wq_item it;
    memset(&it, 0, sizeof(it));
    it.kind = WQ_ACCEPT;
    it.u.accept.fd = fd;
    memcpy(&it.u.accept.sa, sa,
           (size_t)salen < sizeof(it.u.accept.sa) ? (size_t)salen : sizeof(it.u.accept.sa));
    it.u.accept.salen = salen;
    worker_post(w, &it);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main loop's */
    self_worker = w;
    metrics_bind_worker(w);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int worker_start(worker *w)
{
    pthread_mutex_init(&w->wq_mu, NULL);
    w->wq_fd = -1;
    /* Without locks: no other thread touches this loop (see worker_post). */
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return -1;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    w->metrics = calloc(PROXY_MAX_SLOTS, sizeof *w->metrics);
    if (!w->base || !w->metrics)
        return -1;
    w->wq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wq_fd < 0)
        return -1;
    w->wq_ev = event_new(w->base, w->wq_fd, EV_READ | EV_PERSIST, wq_cb, w);
    if (!w->wq_ev || event_add(w->wq_ev, NULL))
        return -1;
    return pthread_create(&w->thread, NULL, worker_main, w) ? -1 : 0;
}

/* Asks w's loop to stop (it finishes the callbacks of its current turn). */
static void worker_signal_stop(worker *w)
{
    wq_item it = {.kind = WQ_STOP};
    worker_post(w, &it);
}

/* Stops the loop and frees the worker's clients (their connections are closed). */
void worker_stop(worker *w)
{
    worker_signal_stop(w);
    pthread_join(w->thread, NULL);
    wq_discard(w);
    while (w->clients)
        client_free(w->clients);
    wq_discard(w);
}

/* ---- the main loop ------------------------------------------------------------------------ */

static void sockaddr_host(const struct sockaddr *sa, char *host, size_t cap)
{
    snprintf(host, cap, "?");
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, (socklen_t)cap);
}

/* Refusals and accept failures are logged at most once per interval, with a count. */
#define ACCEPT_LOG_INTERVAL_MS 10000
#define ACCEPT_PAUSE_MS 250

typedef struct {
    uint64_t last_ms;
    unsigned long long since;
} rate_log;

/* True when a line should be logged now; *count is how many happened since the last. */
static bool rate_log_due(rate_log *r, unsigned long long *count)
{
    uint64_t now = now_ms();
    r->since++;
    if (r->last_ms && now - r->last_ms < ACCEPT_LOG_INTERVAL_MS)
        return false;
    *count = r->since;
    r->since = 0;
    r->last_ms = now;
    return true;
}

static rate_log refused_log, accept_fail_log;

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    proxy *p = arg;
    if (atomic_load(&p->stopping)) {
        close(fd);
        return;
    }
    if (atomic_load(&p->draining)) {
        refuse_fd(fd, 1053, "08S01", "envproxy: server shutdown in progress");
        return;
    }
    char host[INET6_ADDRSTRLEN], why[200];
    sockaddr_host(sa, host, sizeof(host));
    if (conn_admit(p->cfg, host, why, sizeof(why))) {
        unsigned long long n;
        if (rate_log_due(&refused_log, &n))
            log_warn("refused %llu client connection(s) in the last %d s, the latest from %s: "
                     "%s",
                     n, ACCEPT_LOG_INTERVAL_MS / 1000, host, why);
        refuse_fd(fd, 1040, "08004", why);
        return;
    }
    worker *w = &p->workers[p->next_worker++ % (unsigned)p->n_workers];
    worker_hand_fd(w, fd, sa, salen);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy *p = arg;
    if (atomic_load(&p->stopping))
        return;
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_enable(p->listeners[i]);
}

/* accept() failed. Out of descriptors (or memory), the pending connection stays queued and
 * the listener stays readable: retrying at once would spin. The listeners pause briefly
 * instead, and the failure is logged once per interval with a count. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    proxy *p = arg;
    int err = EVUTIL_SOCKET_ERROR();
    unsigned long long n;
    if (rate_log_due(&accept_fail_log, &n))
        log_error("accept failed %llu time(s) in the last %d s: %s; pausing new connections "
                  "for %d ms each time (%lld clients open; see max_client_connections)",
                  n, ACCEPT_LOG_INTERVAL_MS / 1000, evutil_socket_error_to_string(err),
                  ACCEPT_PAUSE_MS, (long long)atomic_load(&p->clients_current));
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_disable(p->listeners[i]);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(p->accept_resume, &tv);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy *p = arg;
    long long busy = atomic_load(&p->busy_clients);
    if (busy > 0 && now_ms() < p->drain_deadline_ms)
        return;
    if (busy > 0)
        log_warn("shutdown_timeout passed with %lld statement(s) still running", busy);
    log_info("shutting down");
    atomic_store(&p->stopping, true);
    event_base_loopbreak(p->base);
}

unsigned long long proxy_audit_drops(proxy *p)
{
    return p->audit ? audit_drops(p->audit) : 0;
}

/* Replaces every enc: backend password with its plain text, with the key from
 * ENVPROXY_SECRET_KEY or secret_key_file. Errors name the environment, never a value. */
int proxy_decrypt_passwords(config *cfg)
{
    bool any = false;
    for (int i = 0; i < cfg->n_envs; i++)
        any |= secret_is_encrypted(cfg->envs[i].password);
    if (!any)
        return 0;
    uint8_t key[32];
    char err[256];
    if (secret_load_key(cfg->secret_key_file, key, err, sizeof(err))) {
        log_error("encrypted passwords: %s", err);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < cfg->n_envs; i++) {
        cfg_env *e = &cfg->envs[i];
        if (!secret_is_encrypted(e->password))
            continue;
        char *plain;
        if (secret_decrypt(key, e->password, &plain, err, sizeof(err))) {
            log_error("env %s: password (%s:%d:%d): %s", e->name, e->mark.file, e->mark.line,
                      e->mark.col, err);
            rc = -1;
            continue;
        }
        /* The model owns its strings: swap in a copy and wipe the decrypted buffer. */
        char *copy = strdup(plain);
        secret_free(plain);
        if (!copy)
            abort();
        OPENSSL_cleanse(e->password, strlen(e->password));
        free(e->password);
        e->password = copy;
    }
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* SIGHUP: the configuration and its includes are read again and swapped in whole, or, when
 * anything is wrong with them, reported with positions and the running one kept. Sessions
 * keep working throughout; removed environments drain; pool settings apply to new backend
 * connections. Listening addresses, threads, TLS files, http, accounts and audit_log
 * paths need a restart (a warning says so). */
static void reload_config(proxy *p)
{
    cfg_diags d;
    cfg_diags_init(&d);
    config *next = config_load(p->cfg_path, &d);
    if (!next) {
        for (int i = 0; i < d.n; i++)
            log_error("reload: %s", d.msgs[i]);
        log_error("reload: %s has errors; the running configuration is kept", p->cfg_path);
        cfg_diags_free(&d);
        return;
    }
    cfg_diags_free(&d);
    if (proxy_decrypt_passwords(next) || assign_slots(p, next)) {
        log_error("reload: the running configuration is kept");
        config_free(next);
        return;
    }
    for (int i = 0; i < next->n_envs; i++)
        resolve_prepare(next->envs[i].host); /* a new name: the resolver asks now */
    config *cur = p->cfg;
    bool same_listen = cur->n_listen == next->n_listen;
    for (int i = 0; same_listen && i < cur->n_listen; i++)
        same_listen = strcmp(cur->listen[i].host, next->listen[i].host) == 0 &&
                      cur->listen[i].port == next->listen[i].port;
    if (!same_listen || cur->threads != next->threads ||
        strcmp(cur->accounts, next->accounts) != 0 ||
        (cur->audit_log == NULL) != (next->audit_log == NULL) ||
        cur->audit_buffer != next->audit_buffer ||
        (cur->http == NULL) != (next->http == NULL) || cur->http_tls != next->http_tls)
        log_warn("reload: listen, threads, accounts, audit_log, audit_buffer and http changes take "
                 "effect at the next start");
    retarget_slots(p, next);
    config **olds = realloc(p->old_cfgs, (size_t)(p->n_old_cfgs + 1) * sizeof(*olds));
    if (!olds)
        abort();
    p->old_cfgs = olds;
    uint64_t *at = realloc(p->old_cfg_ms, (size_t)(p->n_old_cfgs + 1) * sizeof(*at));
    if (!at)
        abort();
    p->old_cfg_ms = at;
    p->old_cfg_ms[p->n_old_cfgs] = now_ms();
    p->old_cfgs[p->n_old_cfgs++] = cur;
    next->generation = cur->generation + 1;
    atomic_store(&p->cfg, next);
    log_level = next->log_level;
    log_info("reload: configuration from %s in effect (%d environment(s))", p->cfg_path,
             next->n_envs);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    proxy *p = arg;
    if (sig == SIGHUP) {
        log_info("SIGHUP: reloading the configuration and the account store, reopening the "
                 "audit log");
        reload_config(p);
        acct_thread_reload(p);
        if (p->audit)
            audit_reopen(p->audit);
        return;
    }
    if (atomic_load(&p->draining)) {
        log_info("second %s: stopping now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        atomic_store(&p->stopping, true);
        event_base_loopbreak(p->base);
        return;
    }
    /* Stop accepting, let running statements finish (up to shutdown_timeout), then stop. */
    log_info("%s: new connections and statements are refused; waiting up to %lld ms for "
             "%lld running statement(s)",
             sig == SIGTERM ? "SIGTERM" : "SIGINT", p->cfg->shutdown_timeout_ms,
             (long long)atomic_load(&p->busy_clients));
    atomic_store(&p->draining, true); /* new connections get ERR 1053 (accept_cb) */
    p->drain_deadline_ms = now_ms() + (uint64_t)p->cfg->shutdown_timeout_ms;
    p->drain_timer = event_new(p->base, -1, EV_PERSIST, drain_cb, p);
    struct timeval tick = {0, 50000};
    event_add(p->drain_timer, &tick);
    drain_cb(-1, 0, p);
}

static void deadline_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy *p = arg;
    uint64_t now = now_ms();
    for (int i = 0; i < p->n_workers; i++) {
        worker *w = &p->workers[i];
        uint64_t due = atomic_load_explicit(&w->deadline_due, memory_order_relaxed);
        if (due && now >= due && !atomic_exchange(&w->deadline_posted, true)) {
            wq_item it = {.kind = WQ_DEADLINES};
            worker_post(w, &it);
        }
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy *p = arg;
    uint64_t now = now_ms();
    int n = atomic_load(&p->n_slots);
    for (int i = 0; i < n; i++) {
        pool_maintain(p->pools[i], now);
        if (atomic_load(&p->pools[i]->removed))
            continue;
        pool_fill(p->pools[i], p->base);
        health_tick(&p->health[i], p->base, now);
    }
    free_unused_configs(p, now);
    audit_report(p->audit);
}

/* Start-up: opens the listeners once every environment has been checked (or the first
 * checks ran out of time). */
static void gate_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy *p = arg;
    if (!health_all_known(p) && now_ms() < p->gate_deadline_ms)
        return;
    event_free(p->gate);
    p->gate = NULL;
    if (atomic_load(&p->draining))
        return;
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_enable(p->listeners[i]);
    log_debug("accepting clients");
}

static int open_listeners(proxy *p)
{
    const config *c = p->cfg;
    p->listeners = calloc((size_t)c->n_listen, sizeof(*p->listeners));
    if (!p->listeners)
        abort();
    for (int i = 0; i < c->n_listen; i++) {
        struct sockaddr_storage ss;
        int sslen = sizeof(ss);
        char spec[128];
        snprintf(spec, sizeof(spec), strchr(c->listen[i].host, ':') ? "[%s]:%d" : "%s:%d",
                 c->listen[i].host, c->listen[i].port);
        if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen)) {
            log_error("listen: cannot parse address %s", spec);
            return -1;
        }
        struct evconnlistener *l = evconnlistener_new_bind(
            p->base, accept_cb, p, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
            1024, (struct sockaddr *)&ss, sslen);
        if (!l) {
            log_error("listen on %s: %s", spec, strerror(errno));
            return -1;
        }
        evconnlistener_set_error_cb(l, accept_error_cb);
        p->listeners[p->n_listeners++] = l;
        log_info("listening on %s", spec);
    }
    return 0;
}

/* Every client is a socket: use as many descriptors as the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_debug("file descriptor limit raised to %llu", (unsigned long long)want);
    }
}

int proxy_run(const char *config_path)
{
    cfg_diags d;
    cfg_diags_init(&d);
    config *cfg = config_load(config_path, &d);
    if (!cfg) {
        cfg_diags_print(&d, stderr);
        cfg_diags_free(&d);
        return 1;
    }
    cfg_diags_free(&d);
    log_level = cfg->log_level;
    if (proxy_decrypt_passwords(cfg)) {
        config_free(cfg);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    evthread_use_pthreads();
    if (mysql_library_init(0, NULL, NULL)) {
        log_error("cannot initialise the MariaDB client library");
        config_free(cfg);
        return 1;
    }

    proxy *p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    atomic_init(&p->cfg, cfg);
    p->cfg_path = (char *)config_path;
    atomic_init(&p->next_conn_id, 1);
    pthread_mutex_init(&p->acct_mu, NULL);
    pthread_mutex_init(&p->version_mu, NULL);
    pthread_mutex_init(&p->reg_mu, NULL);
    int rc = 1;
    char err[256];

    p->store = acct_open(cfg->accounts, err, sizeof(err));
    if (!p->store) {
        log_error("account store %s: %s", cfg->accounts, err);
        goto out;
    }
    p->acct_version = acct_data_version(p->store);
    if (reload_accounts(p))
        goto out;
    if (cfg->audit_log) {
        p->audit = audit_open(cfg->audit_log, (size_t)cfg->audit_buffer, err, sizeof(err));
        if (!p->audit) {
            log_error("audit_log %s: %s", cfg->audit_log, err);
            goto out;
        }
    }
    p->tls_ctx = tls_server_ctx(cfg, err, sizeof(err));
    if (!p->tls_ctx) {
        log_error("TLS: %s", err);
        goto out;
    }
    p->base = event_base_new();
    if (!p->base)
        goto out;

    if (assign_slots(p, cfg))
        goto out;
    retarget_slots(p, cfg);
    log_nonblocking();
    if (resolve_start()) {
        log_error("cannot start the resolver thread");
        goto out;
    }
    for (int i = 0; i < cfg->n_envs; i++)
        resolve_prepare(cfg->envs[i].host);
    resolve_wait(5000); /* a DNS server that does not answer delays the start 5 s at most */
    probe_version(p);
    p->accept_resume = evtimer_new(p->base, accept_resume_cb, p);
    if (!p->accept_resume || open_listeners(p) || http_start(p))
        goto out;

    p->n_workers = cfg->threads;
    p->workers = calloc((size_t)p->n_workers, sizeof(*p->workers));
    if (!p->workers)
        abort();
    for (int i = 0; i < p->n_workers; i++) {
        p->workers[i].p = p;
        p->workers[i].index = i;
        if (p->audit && !(p->workers[i].audit = audit_ring_new(p->audit))) {
            log_error("audit_log %s: cannot make worker thread %d's buffer", cfg->audit_log, i);
            p->n_workers = i;
            goto out;
        }
        if (worker_start(&p->workers[i])) {
            log_error("cannot start worker thread %d", i);
            p->n_workers = i;
            goto out;
        }
    }

    p->sig_int = evsignal_new(p->base, SIGINT, signal_cb, p);
    p->sig_term = evsignal_new(p->base, SIGTERM, signal_cb, p);
    p->sig_hup = evsignal_new(p->base, SIGHUP, signal_cb, p);
    p->tick = event_new(p->base, -1, EV_PERSIST, tick_cb, p);
    p->deadline_watch = event_new(p->base, -1, EV_PERSIST, deadline_watch_cb, p);
    struct timeval second = {1, 0};
    struct timeval watch = {0, DEADLINE_WATCH_MS * 1000};
    event_add(p->deadline_watch, &watch);
    event_add(p->sig_int, NULL);
    event_add(p->sig_term, NULL);
    event_add(p->sig_hup, NULL);
    event_add(p->tick, &second);
    if (acct_thread_start(p)) {
        log_error("cannot start the account store's thread");
        goto out;
    }
    /* The first health checks run now; clients are accepted once each environment has an
     * answer (up or down), or after health_timeout (at most 5 s) at the latest. */
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_disable(p->listeners[i]);
    tick_cb(-1, 0, p);
    long long gate_ms = cfg->health_timeout_ms < 5000 ? cfg->health_timeout_ms : 5000;
    p->gate_deadline_ms = now_ms() + (uint64_t)gate_ms + 200;
    p->gate = event_new(p->base, -1, EV_PERSIST, gate_cb, p);
    struct timeval poll = {0, 10000};
    event_add(p->gate, &poll);
    log_info("envproxy %s ready: %d environment(s), %d worker thread(s)", ENVPROXY_VERSION,
             cfg->n_envs, p->n_workers);
    event_base_dispatch(p->base);
    rc = 0;

out:
    atomic_store(&p->stopping, true);
    resolve_stop();
    acct_thread_stop(p); /* before http_stop: an HTTP job not delivered lets go of its request */
    http_stop(p);
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_free(p->listeners[i]);
    free(p->listeners);
    /* Every loop stops before any worker's clients are freed: freeing them hands connections
     * and slots to waiters of other workers, which must not run meanwhile. */
    for (int i = 0; i < p->n_workers; i++)
        worker_signal_stop(&p->workers[i]);
    for (int i = 0; i < p->n_workers; i++)
        worker_stop(&p->workers[i]);
    for (int i = 0; i < atomic_load(&p->n_slots); i++) {
        pool_free(p->pools[i]);
        health_free(&p->health[i]);
    }
    if (p->drain_timer)
        event_free(p->drain_timer);
    for (int i = 0; i < p->n_workers; i++) {
        worker *w = &p->workers[i];
        wq_discard(w); /* what freeing other workers' clients queued */
        if (w->wq_ev)
            event_free(w->wq_ev);
        if (w->base)
            event_base_free(w->base);
        if (w->wq_fd >= 0)
            close(w->wq_fd);
        pthread_mutex_destroy(&w->wq_mu);
        free(w->wq);
        free(w->metrics);
    }
    free(p->workers);
    struct event *evs[] = {p->sig_int,       p->sig_term, p->sig_hup,       p->tick,
                           p->deadline_watch, p->gate,     p->accept_resume};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    if (p->base)
        event_base_free(p->base);
    if (p->tls_ctx)
        SSL_CTX_free(p->tls_ctx);
    if (p->acct_cur)
        proxy_acct_put(p->acct_cur);
    if (p->store)
        acct_close(p->store);
    if (p->audit)
        audit_close(p->audit);
    pthread_mutex_destroy(&p->acct_mu);
    pthread_mutex_destroy(&p->version_mu);
    pthread_mutex_destroy(&p->reg_mu);
    for (int i = 0; i < p->n_old_cfgs; i++)
        config_free(p->old_cfgs[i]);
    free(p->old_cfgs);
    free(p->old_cfg_ms);
    config_free(p->cfg);
    free(p);
    mysql_library_end();
    libevent_global_shutdown();
    log_info("stopped");
    return rc;
}
