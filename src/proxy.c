/* proxy.c: start-up, the main loop (accept, signals, maintenance) and the worker threads. */
#include "audit.h"
#include "envproxy.h"
#include "log.h"
#include "secret.h"

#include <errno.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <netinet/in.h>
#include <signal.h>
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
            atomic_store(&pl->env, found);
            atomic_store(&pl->removed, false);
        } else if (!atomic_load(&pl->removed)) {
            log_info("env %s: removed from the configuration; its connections drain",
                     pl->env->name);
            atomic_store(&pl->removed, true);
        }
    }
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

static void check_accounts(proxy *p)
{
    long long v = acct_data_version(p->store);
    if (v >= 0 && v != p->acct_version) {
        p->acct_version = v;
        reload_accounts(p);
    }
}

void proxy_accounts_check(proxy *p)
{
    check_accounts(p);
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
    if (mysql_real_connect(m, e->host, e->user, e->password, NULL, (unsigned)e->port, NULL, 0)) {
        proxy_note_version(p, e, mysql_get_server_info(m));
        log_info("env %s: reachable, server version %s", e->name, mysql_get_server_info(m));
    } else {
        log_warn("env %s: not reachable at start-up: %s", e->name, mysql_error(m));
    }
    mysql_close(m);
}

/* ---- workers ----------------------------------------------------------------------------- */

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    for (;;) {
        accepted_fd a;
        pthread_mutex_lock(&w->inbox_mu);
        if (w->inbox_len == 0) {
            pthread_mutex_unlock(&w->inbox_mu);
            return;
        }
        a = w->inbox[0];
        memmove(w->inbox, w->inbox + 1, (size_t)(w->inbox_len - 1) * sizeof(*w->inbox));
        w->inbox_len--;
        pthread_mutex_unlock(&w->inbox_mu);
        if (a.login) {
            client_accept_internal(w, a.fd, a.login);
            free(a.login);
        } else {
            client_accept(w, a.fd, (struct sockaddr *)&a.sa, a.salen);
        }
    }
}

/* Queues a for w (under its lock) and wakes it. */
static void inbox_push(worker *w, const accepted_fd *in)
{
    pthread_mutex_lock(&w->inbox_mu);
    if (w->inbox_len == w->inbox_cap) {
        int cap = w->inbox_cap ? w->inbox_cap * 2 : 64;
        accepted_fd *n = realloc(w->inbox, (size_t)cap * sizeof(*n));
        if (!n)
            abort();
        w->inbox = n;
        w->inbox_cap = cap;
    }
    w->inbox[w->inbox_len++] = *in;
    event_active(w->inbox_ev, EV_READ, 0);
    pthread_mutex_unlock(&w->inbox_mu);
}

void worker_hand_internal(worker *w, int fd, internal_login *login)
{
    accepted_fd a;
    memset(&a, 0, sizeof(a));
    a.fd = fd;
    a.login = login;
    inbox_push(w, &a);
}

void worker_hand_fd(worker *w, int fd, const struct sockaddr *sa, int salen)
{
    accepted_fd in;
    memset(&in, 0, sizeof(in));
    in.fd = fd;
    memcpy(&in.sa, sa, (size_t)salen < sizeof(in.sa) ? (size_t)salen : sizeof(in.sa));
    in.salen = salen;
    inbox_push(w, &in);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main loop's */
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int worker_start(worker *w)
{
    w->base = event_base_new();
    if (!w->base)
        return -1;
    w->inbox_ev = event_new(w->base, -1, 0, inbox_cb, w);
    pthread_mutex_init(&w->inbox_mu, NULL);
    local_worker_init(w);
    return pthread_create(&w->thread, NULL, worker_main, w) ? -1 : 0;
}

/* Stops the loop and frees the worker's clients (their connections are closed). */
void worker_stop(worker *w)
{
    event_base_loopexit(w->base, NULL);
    pthread_join(w->thread, NULL);
    while (w->clients)
        client_free(w->clients);
    pthread_mutex_lock(&w->inbox_mu);
    for (int i = 0; i < w->inbox_len; i++) {
        close(w->inbox[i].fd);
        free(w->inbox[i].login);
    }
    w->inbox_len = 0;
    pthread_mutex_unlock(&w->inbox_mu);
}

/* ---- the main loop ------------------------------------------------------------------------ */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    proxy *p = arg;
    if (atomic_load(&p->stopping)) {
        close(fd);
        return;
    }
    worker *w = &p->workers[p->next_worker++ % (unsigned)p->n_workers];
    worker_hand_fd(w, fd, sa, salen);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    log_error("accept: %s", evutil_socket_error_to_string(err));
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
static int decrypt_passwords(config *cfg)
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
    if (decrypt_passwords(next) || assign_slots(p, next)) {
        log_error("reload: the running configuration is kept");
        config_free(next);
        return;
    }
    config *cur = p->cfg;
    bool same_listen = cur->n_listen == next->n_listen;
    for (int i = 0; same_listen && i < cur->n_listen; i++)
        same_listen = strcmp(cur->listen[i].host, next->listen[i].host) == 0 &&
                      cur->listen[i].port == next->listen[i].port;
    if (!same_listen || cur->threads != next->threads ||
        strcmp(cur->accounts, next->accounts) != 0 ||
        (cur->audit_log == NULL) != (next->audit_log == NULL) ||
        (cur->http == NULL) != (next->http == NULL))
        log_warn("reload: listen, threads, accounts, audit_log and http changes take effect "
                 "at the next start");
    retarget_slots(p, next);
    config **olds = realloc(p->old_cfgs, (size_t)(p->n_old_cfgs + 1) * sizeof(*olds));
    if (!olds)
        abort();
    p->old_cfgs = olds;
    p->old_cfgs[p->n_old_cfgs++] = cur;
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
        reload_accounts(p);
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
    log_info("%s: no new connections or statements; waiting up to %lld ms for %lld running "
             "statement(s)",
             sig == SIGTERM ? "SIGTERM" : "SIGINT", p->cfg->shutdown_timeout_ms,
             (long long)atomic_load(&p->busy_clients));
    atomic_store(&p->draining, true);
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_disable(p->listeners[i]);
    p->drain_deadline_ms = now_ms() + (uint64_t)p->cfg->shutdown_timeout_ms;
    p->drain_timer = event_new(p->base, -1, EV_PERSIST, drain_cb, p);
    struct timeval tick = {0, 50000};
    event_add(p->drain_timer, &tick);
    drain_cb(-1, 0, p);
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
    check_accounts(p);
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
    if (decrypt_passwords(cfg)) {
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
        p->audit = audit_open(cfg->audit_log, 0, err, sizeof(err));
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
    probe_version(p);
    if (open_listeners(p) || http_start(p))
        goto out;

    p->n_workers = cfg->threads;
    p->workers = calloc((size_t)p->n_workers, sizeof(*p->workers));
    if (!p->workers)
        abort();
    for (int i = 0; i < p->n_workers; i++) {
        p->workers[i].p = p;
        p->workers[i].index = i;
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
    struct timeval second = {1, 0};
    event_add(p->sig_int, NULL);
    event_add(p->sig_term, NULL);
    event_add(p->sig_hup, NULL);
    event_add(p->tick, &second);
    log_info("envproxy %s ready: %d environment(s), %d worker thread(s)", ENVPROXY_VERSION,
             cfg->n_envs, p->n_workers);
    event_base_dispatch(p->base);
    rc = 0;

out:
    atomic_store(&p->stopping, true);
    http_stop(p);
    for (int i = 0; i < p->n_listeners; i++)
        evconnlistener_free(p->listeners[i]);
    free(p->listeners);
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
        event_free(w->inbox_ev);
        event_free(w->kill_ev);
        event_base_free(w->base);
        pthread_mutex_destroy(&w->inbox_mu);
        free(w->inbox);
    }
    free(p->workers);
    struct event *evs[] = {p->sig_int, p->sig_term, p->sig_hup, p->tick};
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
    config_free(p->cfg);
    free(p);
    mysql_library_end();
    libevent_global_shutdown();
    log_info("stopped");
    return rc;
}
