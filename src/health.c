/* health.c: periodic checks of every environment, from the main loop, without blocking.
 *
 * Each environment has a connection of the checker's own (not from the pool). A check runs
 * SHOW GRANTS on it (and SHOW GRANTS FOR each role the account holds whose grants did not
 * appear): the answer proves the server works, and tells whether the backend account can
 * change anything (grants.c), which matters in read-only environments.
 *
 * Rules that keep the state true:
 * - a check has its own deadline (health_timeout): a server that stopped answering is down
 *   within one interval plus that deadline, whatever the TCP stack does;
 * - the checker never trusts a connection from before an outage: after any failure (its own
 *   or a worker's) it connects afresh, and when its old connection fails it tries once more
 *   on a new one before calling the environment down;
 * - a down environment is checked every interval (no back-off), and any connection or
 *   response a worker gets from it marks it up at once (health_seen_alive).
 *
 * After the grants, a check also reads the names of the backend's stored functions and UDFs
 * (information_schema.ROUTINES, mysql.func): the read-only policy refuses a call of any such
 * name, whatever the built-in function table says. */
#include "envproxy.h"
#include "grants.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEALTH_TRY_EVERY_MS 1000
#define HEALTH_MAX_STORED 200000 /* names of stored functions and UDFs kept per backend */

static const char *const stored_sql[2] = {
    "SELECT DISTINCT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_TYPE = "
    "'FUNCTION'",
    "SELECT name FROM mysql.func",
};

void health_init(health *h, pool *pl)
{
    memset(h, 0, sizeof(*h));
    h->pool = pl;
    h->writable = -1;
    h->reads_routines = -1;
    h->reads_triggers = -1;
    h->writable_logged = -2;
    pthread_mutex_init(&h->mu, NULL);
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void stored_unref(stored_names *sn)
{
    if (sn && --sn->refs == 0) {
        names_free(sn->names, sn->set.n);
        free(sn);
    }
}

void health_free(health *h)
{
    /* h->conn belongs to the pool's list of connections and is freed with the pool. */
    if (h->timer)
        event_free(h->timer);
    names_free(h->fetch, h->fetch_n);
    stored_unref(h->stored);
    pthread_mutex_destroy(&h->mu);
}

stored_names *health_stored_get(health *h)
{
    pthread_mutex_lock(&h->mu);
    stored_names *sn = h->stored;
    if (sn)
        sn->refs++;
    pthread_mutex_unlock(&h->mu);
    return sn;
}

void health_stored_put(health *h, stored_names *sn)
{
    if (!sn)
        return;
    pthread_mutex_lock(&h->mu);
    stored_unref(sn);
    pthread_mutex_unlock(&h->mu);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool stored_row(backend *b, MYSQL_ROW row, unsigned long *lengths, void *arg)
{
    health *h = arg;
    if (!row || !row[0] || h->fetch_bad)
        return !h->fetch_bad;
    if (h->fetch_n == h->fetch_cap) {
        size_t cap = h->fetch_cap ? h->fetch_cap * 2 : 64;
        char **grown = cap <= HEALTH_MAX_STORED ? realloc(h->fetch, cap * sizeof(*grown)) : NULL;
        if (!grown) {
            h->fetch_bad = true;
            return false;
        }
        h->fetch = grown;
        h->fetch_cap = cap;
    }
    char *name = strndup(row[0], lengths[0]);
    if (!name) {
        h->fetch_bad = true;
        return false;
    }
    for (char *p = name; *p; p++) /* the policy compares ASCII case-insensitively */
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    h->fetch[h->fetch_n++] = name;
    return true;
}

/* Publishes the names read (sorted, without duplicates) for the policy checks. */
static void stored_publish(health *h)
{
    stored_names *sn = calloc(1, sizeof(*sn));
    if (!sn) {
        names_free(h->fetch, h->fetch_n);
    } else {
        if (h->fetch_n > 1) /* an empty list has no array at all */
            qsort(h->fetch, h->fetch_n, sizeof(*h->fetch), name_cmp);
        size_t o = 0;
        for (size_t i = 0; i < h->fetch_n; i++) {
            if (o > 0 && strcmp(h->fetch[o - 1], h->fetch[i]) == 0)
                free(h->fetch[i]);
            else
                h->fetch[o++] = h->fetch[i];
        }
        sn->refs = 1;
        sn->names = h->fetch;
        sn->set.names = (const char *const *)h->fetch;
        sn->set.n = o;
        pthread_mutex_lock(&h->mu);
        stored_names *old = h->stored;
        h->stored = sn;
        stored_unref(old);
        pthread_mutex_unlock(&h->mu);
    }
    h->fetch = NULL;
    h->fetch_n = h->fetch_cap = 0;
}

/* The stored-function read of a check ended (rc 0, or the server refused it). */
static void stored_read(health *h, int rc)
{
    if (h->fetch_bad || (h->phase == HC_STORED_FN && rc != 0)) {
        log_warn("env %s: could not read the backend's stored function names%s",
                 h->pool->env->name, h->fetch_bad ? " (too many)" : "");
        names_free(h->fetch, h->fetch_n);
        h->fetch = NULL;
        h->fetch_n = h->fetch_cap = 0;
    } else {
        stored_publish(h);
    }
}

void health_note(health *h, bool up, const char *error)
{
    pthread_mutex_lock(&h->mu);
    bool was_up = h->known && h->up;
    bool was_known = h->known;
    h->known = true;
    h->up = up;
    if (!up && (was_up || !was_known))
        h->outages++; /* connections opened before now are not to be trusted */
    if (!up && error)
        snprintf(h->last_error, sizeof(h->last_error), "%s", error);
    atomic_store(&h->down, !up);
    pthread_mutex_unlock(&h->mu);
    if (was_up != up || !was_known)
        log_info("env %s: %s%s%s", h->pool->env->name, up ? "up" : "down", up ? "" : ": ",
                 up ? "" : (error ? error : ""));
}

void health_seen_alive(health *h)
{
    if (atomic_load_explicit(&h->down, memory_order_relaxed))
        health_note(h, true, NULL);
}

bool health_allow(health *h)
{
    /* down is known && !up, written under mu with them: an environment not known down is
     * allowed without the lock (every statement asks). */
    if (!atomic_load_explicit(&h->down, memory_order_acquire))
        return true;
    bool ok = true;
    pthread_mutex_lock(&h->mu);
    if (h->known && !h->up) {
        uint64_t now = now_ms();
        ok = now - h->last_try_ms >= HEALTH_TRY_EVERY_MS;
        if (ok)
            h->last_try_ms = now;
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

void health_get(health *h, health_view *out)
{
    pthread_mutex_lock(&h->mu);
    out->known = h->known;
    out->up = h->up;
    memcpy(out->last_error, h->last_error, sizeof(out->last_error));
    memcpy(out->version, h->version, sizeof(out->version));
    out->latency_ms = h->latency_ms;
    out->checked_at = h->checked_at;
    out->writable = h->writable;
    out->reads_routines = h->reads_routines;
    out->reads_triggers = h->reads_triggers;
    memcpy(out->privileges, h->privileges, sizeof(out->privileges));
    pthread_mutex_unlock(&h->mu);
}

const char *health_writable_name(int writable)
{
    return writable > 0 ? "yes" : writable == 0 ? "no" : "unknown";
}

static void check_step(backend *b, int rc, void *arg);

/* The check is over: the next one is due one interval after this one started. */
static void check_over(health *h)
{
    h->busy = false;
    if (h->timer)
        evtimer_del(h->timer);
    h->next_ms = h->started_ms + (uint64_t)h->pool->proxy->cfg->health_interval_ms;
}

static void drop_conn(health *h)
{
    if (h->conn) {
        backend_free(h->conn);
        h->conn = NULL;
    }
}

static void check_failed(health *h, const char *error)
{
    health_note(h, false, error);
    drop_conn(h);
    check_over(h);
}

/* Publishes what the grants say and logs a change once (read-only environments only: a
 * read-write environment's backend account is meant to write). */
static void publish_grants(health *h)
{
    const cfg_env *e = h->pool->env;
    const grants_info *g = &h->grants;
    int w = g->writable ? 1 : g->unknown ? -1 : 0;
    pthread_mutex_lock(&h->mu);
    h->writable = w;
    h->reads_routines = g->reads_routines ? 1 : g->unknown ? -1 : 0;
    h->reads_triggers = g->reads_triggers ? 1 : g->unknown ? -1 : 0;
    snprintf(h->privileges, sizeof(h->privileges), "%s", g->what);
    pthread_mutex_unlock(&h->mu);
    if (e->access != ACCESS_READ_ONLY || w == h->writable_logged)
        return;
    if (w > 0)
        log_warn("env %s: the backend account '%s' can change things: %s. The read-only "
                 "environment then rests on envproxy's statement check alone; give envproxy an "
                 "account with SELECT only (docs/policy.md)",
                 e->name, e->user, g->what);
    else if (w < 0)
        log_warn("env %s: cannot tell whether the backend account '%s' can change things: %s",
                 e->name, e->user, g->what);
    else if (h->writable_logged != -2)
        log_info("env %s: the backend account '%s' can only read now", e->name, e->user);
    h->writable_logged = w;
}

static void check_succeeded(health *h)
{
    backend *b = h->conn;
    uint64_t now = now_ms();
    pthread_mutex_lock(&h->mu);
    h->checked_at = (long long)time(NULL);
    h->latency_ms = (double)(now - h->started_ms);
    snprintf(h->version, sizeof(h->version), "%s", mysql_get_server_info(b->mysql));
    pthread_mutex_unlock(&h->mu);
    health_note(h, true, NULL);
    publish_grants(h);
    proxy_note_version(h->pool->proxy, h->pool->env, mysql_get_server_info(b->mysql));
    check_over(h);
}

static bool grant_row(backend *b, MYSQL_ROW row, unsigned long *lengths, void *arg)
{
    health *h = arg;
    if (row && row[0])
        grants_add_line(&h->grants, row[0], lengths[0]);
    return true; /* every row is read (grants_info is bounded); the deadline bounds time */
}

/* Runs SHOW GRANTS FOR the next role whose grants did not appear; false when none is left. */
static bool next_role(health *h)
{
    grants_info *g = &h->grants;
    while (h->role_next < g->n_roles) {
        int i = h->role_next++;
        if (!grants_role_pending(g, i))
            continue;
        char sql[GRANTS_NAME_MAX + 32];
        snprintf(sql, sizeof(sql), "SHOW GRANTS FOR %s", g->roles[i]);
        h->role_now = i;
        h->phase = HC_ROLE;
        backend_fetch(h->conn, sql, grant_row, check_step, h);
        return true;
    }
    return false;
}

static void open_conn(health *h)
{
    const config *cfg = h->pool->proxy->cfg;
    h->conn = backend_new(h->pool);
    h->conn->no_db = true; /* tells it apart from pooled connections in processlists */
    /* A second past the check's deadline: the deadline speaks first (with a clear error),
     * then the operation under way ends by itself. */
    h->conn->timeout_s = (unsigned)((cfg->health_timeout_ms + 999) / 1000) + 1;
    pthread_mutex_lock(&h->mu);
    h->conn_outages = h->outages;
    pthread_mutex_unlock(&h->mu);
    h->conn_target = backend_target(h->pool->env);
    h->phase = HC_CONNECT;
    backend_connect(h->conn, h->base, check_step, h);
}

static void read_grants(health *h)
{
    grants_init(&h->grants);
    h->role_next = 0;
    h->phase = HC_GRANTS;
    backend_fetch(h->conn, "SHOW GRANTS", grant_row, check_step, h);
}

/* After the grants: the names of the stored functions, then of the UDFs. */
static void read_stored(health *h)
{
    names_free(h->fetch, h->fetch_n); /* what an abandoned check had read */
    h->fetch = NULL;
    h->fetch_n = h->fetch_cap = 0;
    h->fetch_bad = false;
    h->phase = HC_STORED_FN;
    backend_fetch(h->conn, stored_sql[0], stored_row, check_step, h);
}

/* The grants of role role_now were asked for: unknown unless they appeared. */
static void role_read(health *h)
{
    if (!grants_role_pending(&h->grants, h->role_now))
        return;
    char why[GRANTS_NAME_MAX + 48];
    snprintf(why, sizeof(why), "role %s (its grants cannot be read)", h->grants.roles[h->role_now]);
    grants_note_unknown(&h->grants, why);
}

/* Every operation of a check ends here. */
static void check_step(backend *b, int rc, void *arg)
{
    health *h = arg;
    if (h->abandoned) {
        /* The deadline passed and the environment is down already: this connection goes. */
        drop_conn(h);
        check_over(h);
        return;
    }
    /* A server error (below 2000) means the server answered: only a client error (lost
     * connection, timeout) says something about the environment's health. */
    bool server_error = rc && b->err_code > 0 && b->err_code < 2000;
    if (rc && !server_error) {
        if (h->reused && !h->retried) {
            /* The old connection may be from before a restart: ask again on a new one. */
            log_debug("env %s: health check on the old connection failed (%s); reconnecting",
                      h->pool->env->name, b->err_msg);
            h->retried = true;
            drop_conn(h);
            open_conn(h);
            return;
        }
        check_failed(h, b->err_msg);
        return;
    }
    switch (h->phase) {
    case HC_CONNECT:
        if (rc) {
            check_failed(h, b->err_msg); /* refused login: unusable */
            return;
        }
        read_grants(h);
        return;
    case HC_GRANTS:
        if (rc) {
            char why[300];
            snprintf(why, sizeof(why), "SHOW GRANTS failed: %s", b->err_msg);
            grants_note_unknown(&h->grants, why);
        }
        break;
    case HC_ROLE:
        if (rc) {
            /* MariaDB shows a role's grants only while it is active: take it on (this
             * connection serves no client) and read SHOW GRANTS again. */
            char sql[GRANTS_NAME_MAX + 16];
            snprintf(sql, sizeof(sql), "SET ROLE %s", h->grants.roles[h->role_now]);
            h->phase = HC_ROLE_SET;
            backend_query(h->conn, sql, check_step, h);
            return;
        }
        role_read(h);
        break;
    case HC_ROLE_SET:
        if (rc) {
            role_read(h);
            break;
        }
        h->phase = HC_ROLE_SHOW;
        backend_fetch(h->conn, "SHOW GRANTS", grant_row, check_step, h);
        return;
    case HC_ROLE_SHOW:
        role_read(h);
        break;
    case HC_STORED_FN:
        if (rc == 0 && !h->fetch_bad) {
            /* mysql.func may be closed to the account: then only the stored functions count. */
            h->phase = HC_STORED_UDF;
            backend_fetch(h->conn, stored_sql[1], stored_row, check_step, h);
            return;
        }
        stored_read(h, rc);
        check_succeeded(h);
        return;
    case HC_STORED_UDF:
        stored_read(h, rc);
        check_succeeded(h);
        return;
    }
    if (next_role(h))
        return;
    read_stored(h);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    health *h = arg;
    if (!h->busy || h->abandoned)
        return;
    h->abandoned = true; /* the operation under way ends by Connector/C's own timeouts */
    char msg[160];
    snprintf(msg, sizeof(msg), "no answer to the health check within %lld ms (health_timeout)",
             h->pool->proxy->cfg->health_timeout_ms);
    health_note(h, false, msg);
}

void health_tick(health *h, struct event_base *base, uint64_t now)
{
    if (h->busy || now < h->next_ms)
        return;
    const config *cfg = h->pool->proxy->cfg;
    h->base = base;
    if (!h->timer) {
        h->timer = evtimer_new(base, deadline_cb, h);
        if (!h->timer)
            abort();
    }
    h->busy = true;
    h->abandoned = false;
    h->retried = false;
    h->started_ms = now;
    long long ms = cfg->health_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(h->timer, &tv);
    /* Trust the old connection only while nothing has failed since it was opened, and while
     * the configuration it was opened with (host, account) is still the one in force. */
    pthread_mutex_lock(&h->mu);
    bool trust = h->known && h->up && h->conn_outages == h->outages &&
                 h->conn_target == backend_target(h->pool->env);
    pthread_mutex_unlock(&h->mu);
    if (h->conn && (!trust || h->conn->op != BOP_NONE || backend_is_dead(h->conn)))
        drop_conn(h);
    h->reused = h->conn != NULL;
    if (h->conn)
        read_grants(h);
    else
        open_conn(h);
}

bool health_all_known(proxy *p)
{
    int n = atomic_load(&p->n_slots);
    for (int i = 0; i < n; i++) {
        if (atomic_load(&p->pools[i]->removed))
            continue;
        pthread_mutex_lock(&p->health[i].mu);
        bool known = p->health[i].known;
        pthread_mutex_unlock(&p->health[i].mu);
        if (!known)
            return false;
    }
    return true;
}
