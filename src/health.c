/* health.c: periodic checks of every environment, from the main loop, without blocking.
 *
 * Each environment has a connection of the checker's own (not from the pool), pinged every
 * health_interval. When a check fails the environment is down and the connection is
 * dropped; reconnecting backs off exponentially up to HEALTH_BACKOFF_CAP_MS. Statements
 * for a down environment fail fast, but one a second still tries for real, so that an
 * environment that came back is found at once.
 *
 * After each successful check the checker also reads the names of the backend's stored
 * functions and UDFs (information_schema.ROUTINES, mysql.func): the read-only policy refuses
 * a call of any such name, whatever the built-in function table says. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEALTH_BACKOFF_CAP_MS 60000
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

static void stored_done(backend *b, int rc, void *arg)
{
    health *h = arg;
    if (h->fetch_phase == 0 && rc == 0 && !h->fetch_bad) {
        /* mysql.func may be closed to the account: then only the stored functions count. */
        h->fetch_phase = 1;
        backend_fetch(b, stored_sql[1], stored_row, stored_done, h);
        return;
    }
    if (h->fetch_bad || (h->fetch_phase == 0 && rc != 0)) {
        log_warn("env %s: could not read the backend's stored function names%s",
                 h->pool->env->name, h->fetch_bad ? " (too many)" : "");
        names_free(h->fetch, h->fetch_n);
        h->fetch = NULL;
        h->fetch_n = h->fetch_cap = 0;
    } else {
        stored_publish(h);
    }
    h->busy = false;
}

void health_note(health *h, bool up, const char *error)
{
    pthread_mutex_lock(&h->mu);
    bool was = h->known && h->up;
    h->known = true;
    h->up = up;
    if (!up && error)
        snprintf(h->last_error, sizeof(h->last_error), "%s", error);
    pthread_mutex_unlock(&h->mu);
    if (was != up)
        log_info("env %s: %s%s%s", h->pool->env->name, up ? "up" : "down", up ? "" : ": ",
                 up ? "" : (error ? error : ""));
}

bool health_allow(health *h)
{
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
    pthread_mutex_unlock(&h->mu);
}

static void check_done(backend *b, int rc, void *arg)
{
    health *h = arg;
    uint64_t now = now_ms();
    long long interval = h->pool->proxy->cfg->health_interval_ms;
    h->busy = false;
    pthread_mutex_lock(&h->mu);
    h->checked_at = (long long)time(NULL);
    h->latency_ms = (double)(now - h->started_ms);
    if (rc == 0 && b->mysql)
        snprintf(h->version, sizeof(h->version), "%s", mysql_get_server_info(b->mysql));
    pthread_mutex_unlock(&h->mu);
    if (rc == 0) {
        health_note(h, true, NULL);
        h->backoff_ms = 0;
        h->next_ms = now + (uint64_t)interval;
        proxy_note_version(h->pool->proxy, h->pool->env, mysql_get_server_info(b->mysql));
        h->busy = true;
        h->fetch_phase = 0;
        h->fetch_bad = false;
        backend_fetch(b, stored_sql[0], stored_row, stored_done, h);
        return;
    }
    health_note(h, false, b->err_msg);
    backend_free(b);
    h->conn = NULL;
    h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : (uint64_t)interval;
    if (h->backoff_ms > HEALTH_BACKOFF_CAP_MS)
        h->backoff_ms = HEALTH_BACKOFF_CAP_MS;
    h->next_ms = now + h->backoff_ms;
}

void health_tick(health *h, struct event_base *base, uint64_t now)
{
    if (h->busy || now < h->next_ms)
        return;
    h->busy = true;
    h->started_ms = now;
    if (!h->conn) {
        h->conn = backend_new(h->pool);
        h->conn->no_db = true; /* tells it apart from pooled connections in processlists */
        backend_connect(h->conn, base, check_done, h);
    } else {
        backend_ping(h->conn, check_done, h);
    }
}
