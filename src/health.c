/* health.c: periodic checks of every environment, from the main loop, without blocking.
 *
 * Each environment has a connection of the checker's own (not from the pool), pinged every
 * health_interval. When a check fails the environment is down and the connection is
 * dropped; reconnecting backs off exponentially up to HEALTH_BACKOFF_CAP_MS. Statements
 * for a down environment fail fast, but one a second still tries for real, so that an
 * environment that came back is found at once. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEALTH_BACKOFF_CAP_MS 60000
#define HEALTH_TRY_EVERY_MS 1000

void health_init(health *h, pool *pl)
{
    memset(h, 0, sizeof(*h));
    h->pool = pl;
    pthread_mutex_init(&h->mu, NULL);
}

void health_free(health *h)
{
    /* h->conn belongs to the pool's list of connections and is freed with the pool. */
    pthread_mutex_destroy(&h->mu);
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
