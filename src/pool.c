/* pool.c: one pool of backend connections per environment, shared by all workers.
 *
 * The pool only counts and hands over; it never drives a connection itself. A client that
 * finds no idle connection either gets a slot (and opens a connection on its own loop) or
 * waits in a FIFO queue. Whoever frees a connection or a slot hands it to the first waiter
 * under the pool's lock and wakes the waiter's loop with event_active(). */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>

pool *pool_new(proxy *p, const cfg_env *env, int index)
{
    pool *pl = calloc(1, sizeof(*pl));
    if (!pl)
        abort();
    pl->proxy = p;
    pl->env = env;
    pl->target = backend_target(env);
    pl->index = index;
    pthread_mutex_init(&pl->mu, NULL);
    return pl;
}

void pool_free(pool *pl)
{
    if (!pl)
        return;
    while (pl->all)
        backend_free(pl->all);
    pthread_mutex_destroy(&pl->mu);
    free(pl);
}

static void queue_remove(pool *pl, pool_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        pl->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        pl->wait_tail = w->prev;
    w->prev = w->next = NULL;
    pl->n_waiting--;
}

/* Hands b (or, when b is NULL, a slot) to the first waiter. Called with the lock held.
 * Returns false when nobody waits. */
static bool hand_to_waiter(pool *pl, backend *b)
{
    pool_waiter *w = pl->wait_head;
    if (!w)
        return false;
    queue_remove(pl, w);
    w->state = b ? PW_GRANTED : PW_SLOT;
    w->granted = b;
    /* Activated under the lock: the waiter's owner takes the lock before freeing wake. */
    event_active(w->wake, EV_READ, 0);
    return true;
}

/* How many idle connections pool_acquire looks through for one of the caller's loop. */
#define AFFINITY_SCAN 16

pool_result pool_acquire(pool *pl, pool_waiter *w, backend **out, struct event_base *base)
{
    *out = NULL;
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        backend **at = &pl->idle;
        for (int i = 0; *at && i < AFFINITY_SCAN; i++, at = &(*at)->next) {
            if ((*at)->base == base)
                break;
        }
        if (!*at)
            at = &pl->idle; /* none of ours among the most recent: the most recent */
        backend *b = *at;
        if (b) {
            *at = b->next;
            pl->n_idle--;
            b->next = NULL;
            pthread_mutex_unlock(&pl->mu);
            if (backend_idle_dead(b, base)) {
                log_debug("env %s: idle backend connection %lu was closed by the server",
                          pl->env->name, b->thread_id);
                pool_discard(pl, b);
                continue;
            }
            if (b->target != atomic_load(&pl->target)) {
                /* Opened before a reload changed the server or the account: not reused. */
                log_debug("env %s: closing backend connection %lu of the old configuration",
                          pl->env->name, b->thread_id);
                pool_discard(pl, b);
                continue;
            }
            *out = b;
            return POOL_READY;
        }
        if (pl->n_total < pl->env->pool.max) {
            pl->n_total++;
            pthread_mutex_unlock(&pl->mu);
            return POOL_CONNECT;
        }
        w->pool = pl;
        w->state = PW_QUEUED;
        w->granted = NULL;
        w->next = NULL;
        w->prev = pl->wait_tail;
        if (pl->wait_tail)
            pl->wait_tail->next = w;
        else
            pl->wait_head = w;
        pl->wait_tail = w;
        pl->n_waiting++;
        pthread_mutex_unlock(&pl->mu);
        return POOL_QUEUED;
    }
}

backend *pool_cancel(pool *pl, pool_waiter *w)
{
    backend *b = NULL;
    bool give_back_slot = false;
    pthread_mutex_lock(&pl->mu);
    switch (w->state) {
    case PW_QUEUED:
        queue_remove(pl, w);
        break;
    case PW_GRANTED:
        b = w->granted;
        break;
    case PW_SLOT:
        give_back_slot = true;
        break;
    case PW_NONE:
        break;
    }
    w->state = PW_NONE;
    w->granted = NULL;
    if (give_back_slot && !hand_to_waiter(pl, NULL))
        pl->n_total--;
    pthread_mutex_unlock(&pl->mu);
    return b;
}

void pool_release(pool *pl, backend *b)
{
    if (atomic_load(&pl->removed) || b->target != atomic_load(&pl->target)) {
        pool_discard(pl, b); /* gone from the configuration, or changed: drain */
        return;
    }
    b->next = NULL;
    pthread_mutex_lock(&pl->mu);
    if (!hand_to_waiter(pl, b)) {
        b->idle_since_ms = now_ms();
        b->next = pl->idle;
        pl->idle = b;
        pl->n_idle++;
    }
    pthread_mutex_unlock(&pl->mu);
}

void pool_discard(pool *pl, backend *b)
{
    if (b)
        backend_free(b);
    pthread_mutex_lock(&pl->mu);
    if (!hand_to_waiter(pl, NULL))
        pl->n_total--;
    pthread_mutex_unlock(&pl->mu);
}

void pool_maintain(pool *pl, uint64_t now)
{
    backend *expired = NULL;
    pthread_mutex_lock(&pl->mu);
    backend **pp = &pl->idle;
    /* The list is most-recent first: everything past the first expired entry is older. */
    while (*pp && pl->n_total > pl->env->pool.min) {
        backend *b = *pp;
        if (now - b->idle_since_ms >= (uint64_t)pl->env->pool.idle_timeout_ms) {
            *pp = b->next;
            pl->n_idle--;
            pl->n_total--;
            b->next = expired;
            expired = b;
        } else {
            pp = &b->next;
        }
    }
    pthread_mutex_unlock(&pl->mu);
    while (expired) {
        backend *b = expired;
        expired = b->next;
        log_debug("env %s: closing idle backend connection %lu", pl->env->name, b->thread_id);
        backend_free(b);
    }
}

void pool_stats(pool *pl, int *in_use, int *idle, int *waiting)
{
    pthread_mutex_lock(&pl->mu);
    *in_use = pl->n_total - pl->n_idle;
    *idle = pl->n_idle;
    *waiting = pl->n_waiting;
    pthread_mutex_unlock(&pl->mu);
}

static void recycle_done(backend *b, int rc, void *arg)
{
    if (rc) {
        log_debug("env %s: reset of backend connection %lu failed: %s", b->pool->env->name,
                  b->thread_id, b->err_msg);
        pool_discard(b->pool, b);
        return;
    }
    pool_release(b->pool, b);
}

void backend_recycle(backend *b)
{
    if (atomic_load(&b->pool->proxy->stopping)) {
        pool_discard(b->pool, b);
        return;
    }
    if (evbuffer_get_length(b->out) > 0) {
        /* Part of a packet may be on the wire already: whatever the reset wrote would be
         * read by the server as the rest of it. */
        pool_discard(b->pool, b);
        return;
    }
    evbuffer_drain(b->in, evbuffer_get_length(b->in));
    backend_reset(b, recycle_done, NULL);
}

static void fill_done(backend *b, int rc, void *arg)
{
    pool *pl = b->pool;
    if (rc) {
        atomic_fetch_add(&pl->connect_errors, 1);
        log_warn("env %s: cannot open a pooled connection to %s:%d: %s", pl->env->name,
                 pl->env->host, pl->env->port, b->err_msg);
        pool_discard(pl, b);
        return;
    }
    health_seen_alive(&pl->proxy->health[pl->index]);
    proxy_note_version(pl->proxy, pl->env, mysql_get_server_info(b->mysql));
    pool_release(pl, b);
}

void pool_fill(pool *pl, struct event_base *base)
{
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        bool need = pl->n_total < pl->env->pool.min;
        if (need)
            pl->n_total++;
        pthread_mutex_unlock(&pl->mu);
        if (!need)
            return;
        backend *b = backend_new(pl);
        backend_connect(b, base, fill_done, NULL);
    }
}
