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
    return (int)(e - p->cfg->envs);
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
        client_accept(w, a.fd, (struct sockaddr *)&a.sa, a.salen);
    }
}

void worker_hand_fd(worker *w, int fd, const struct sockaddr *sa, int salen)
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
    accepted_fd *a = &w->inbox[w->inbox_len++];
    a->fd = fd;
    memset(&a->sa, 0, sizeof(a->sa));
    memcpy(&a->sa, sa, (size_t)salen < sizeof(a->sa) ? (size_t)salen : sizeof(a->sa));
    a->salen = salen;
    event_active(w->inbox_ev, EV_READ, 0);
    pthread_mutex_unlock(&w->inbox_mu);
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
    for (int i = 0; i < w->inbox_len; i++)
        close(w->inbox[i].fd);
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

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    proxy *p = arg;
    if (sig == SIGHUP) {
        log_info("SIGHUP: reloading the account store and reopening the audit log");
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
    for (int i = 0; i < p->cfg->n_envs; i++) {
        pool_maintain(p->pools[i], now);
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
    evthread_use_pthreads();
    if (mysql_library_init(0, NULL, NULL)) {
        log_error("cannot initialise the MariaDB client library");
        config_free(cfg);
        return 1;
    }

    proxy *p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    p->cfg = cfg;
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
    p->pools = calloc((size_t)cfg->n_envs, sizeof(*p->pools));
    if (!p->pools)
        abort();
    p->health = calloc((size_t)cfg->n_envs, sizeof(*p->health));
    p->metrics = calloc((size_t)cfg->n_envs, sizeof(*p->metrics));
    if (!p->health || !p->metrics)
        abort();
    for (int i = 0; i < cfg->n_envs; i++) {
        p->pools[i] = pool_new(p, &cfg->envs[i], i);
        health_init(&p->health[i], p->pools[i]);
    }
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
    if (p->pools) {
        for (int i = 0; i < cfg->n_envs; i++) {
            pool_free(p->pools[i]);
            if (p->health)
                health_free(&p->health[i]);
        }
        free(p->pools);
        free(p->health);
    }
    free(p->metrics);
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
    free(p);
    config_free(cfg);
    mysql_library_end();
    libevent_global_shutdown();
    log_info("stopped");
    return rc;
}
