/* pool.c: one pool of backend connections per environment, shared by all workers.
 *
 * The pool only counts and hands over; it never drives a connection itself. A client that
 * finds no idle connection either gets a slot (and opens a connection on its own loop) or
 * waits in a FIFO queue. Whoever frees a connection or a slot hands it to the first waiter
 * under the pool's lock and queues a wake-up for the waiter's worker (worker_post).
 *
 * Worker loops are not locked, so a connection's registration with a loop is only ever
 * touched by that loop's thread. An idle connection may stay registered (parked) with the
 * loop that used it last (backend_park): only that worker takes it from the idle list. Any
 * other worker that needs it queues and asks the owner (WQ_UNPARK) to unregister it and hand
 * it over; the main loop asks the owner to close it when it expires (WQ_FREE_BACKEND). */
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
    if (b && b->ev_added && b->base != w->owner->base)
        backend_unwatch(b); /* parked on the caller's loop (pool_release runs there) */
    w->state = b ? PW_GRANTED : PW_SLOT;
    w->granted = b;
    /* Queued under the lock: pool_cancel and pool_waiter_gone withdraw it under the lock. */
    wq_item it = {.kind = WQ_WAKE, .u.waiter = w};
    worker_post(w->owner, &it);
    return true;
}

/* Whether b, idle, is registered with a loop other than base: only that loop may take it. */
static bool parked_elsewhere(const backend *b, struct event_base *base)
{
    return b->ev_added && b->base != base;
}

/* Asks each worker with connections of pl parked on its loop to hand them to the waiters.
 * Called with the lock held, when every idle connection is parked on other loops. */
static void ask_owners(pool *pl)
{
    proxy *p = pl->proxy;
    for (int i = 0; i < p->n_workers; i++) {
        worker *o = &p->workers[i];
        for (backend *b = pl->idle; b; b = b->next) {
            if (b->ev_added && b->base == o->base) {
                wq_item it = {.kind = WQ_UNPARK, .u.pool = pl};
                worker_post(o, &it);
                break;
            }
        }
    }
}

/* Takes the idle connection at *at off the list and lets go of the pool's lock. Returns
 * false when the server had closed it meanwhile: it is discarded (its slot goes to the
 * first waiter) and the caller looks again. */
static bool take_idle(pool *pl, backend **at, struct event_base *base)
{
    backend *b = *at;
    *at = b->next;
    pl->n_idle--;
    b->next = NULL;
    pthread_mutex_unlock(&pl->mu);
    if (!backend_idle_dead(b, base))
        return true;
    log_debug("env %s: idle backend connection %lu was closed by the server", pl->env->name,
              b->thread_id);
    pool_discard(pl, b);
    return false;
}

void pool_unpark_for_waiters(pool *pl, struct event_base *base)
{
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        backend **at = &pl->idle;
        if (pl->n_waiting > 0)
            while (*at && parked_elsewhere(*at, base))
                at = &(*at)->next;
        backend *b = pl->n_waiting > 0 ? *at : NULL;
        if (!b) {
            /* Nothing of ours left (taken meanwhile): waiters that room remains for open
             * connections of their own rather than wait for a release. */
            while (pl->n_waiting > 0 && pl->n_total < pl->env->pool.max) {
                pl->n_total++;
                hand_to_waiter(pl, NULL);
            }
            pthread_mutex_unlock(&pl->mu);
            return;
        }
        if (!take_idle(pl, at, base))
            continue;
        backend_attach(b, base); /* unregistered here: ours, or nobody's */
        pool_release(pl, b);
    }
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
        if (!*at) {
            /* None of ours among the most recent: the most recent not parked on another
             * worker's loop (that loop alone may unregister it). */
            at = &pl->idle;
            while (*at && parked_elsewhere(*at, base))
                at = &(*at)->next;
        }
        backend *b = *at;
        if (b) {
            if (!take_idle(pl, at, base))
                continue;
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
        /* Every idle connection is parked on another loop. While the pool has room, this
         * worker opens one of its own: it stays parked here, so that under steady load each
         * worker has the connections it needs and no statement waits for a thread hop (with
         * many clients on both workers, asking the owner every time cost a hop per
         * statement). At the pool's size, the owner hands one over. */
        if (pl->n_total < pl->env->pool.max) {
            pl->n_total++;
            pthread_mutex_unlock(&pl->mu);
            return POOL_CONNECT;
        }
        bool ask = pl->idle != NULL;
        w->pool = pl;
        w->owner = worker_self();
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
        if (ask)
            ask_owners(pl);
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
    if (w->owner)
        worker_forget_waiter(w->owner, w); /* a wake-up for the grant is not delivered */
    if (give_back_slot && !hand_to_waiter(pl, NULL))
        pl->n_total--;
    pthread_mutex_unlock(&pl->mu);
    return b;
}

void pool_waiter_gone(pool_waiter *w)
{
    if (!w->pool)
        return;
    backend *b = pool_cancel(w->pool, w);
    if (b)
        pool_discard(w->pool, b);
}

void pool_release(pool *pl, backend *b)
{
    if (atomic_load(&pl->removed) || b->target != atomic_load(&pl->target)) {
        pool_discard(pl, b); /* gone from the configuration, or changed: drain */
        return;
    }
    if (evbuffer_get_length(b->out) > 0 || b->closing) {
        pool_discard(pl, b); /* part of a command unsent, or the server closes it */
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
            worker *owner = b->ev_added ? worker_of_base(pl->proxy, b->base) : NULL;
            if (owner) {
                /* Parked on a worker's loop: that worker closes it. */
                b->next = NULL;
                log_debug("env %s: closing idle backend connection %lu", pl->env->name,
                          b->thread_id);
                wq_item it = {.kind = WQ_FREE_BACKEND, .u.backend = b};
                worker_post(owner, &it);
                continue;
            }
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
    if (evbuffer_get_length(b->out) > 0 || b->no_reset) {
        /* Part of a packet may be on the wire already: whatever the reset wrote would be
         * read by the server as the rest of it. A session that ran XA may leave a prepared
         * XA transaction: the server keeps it when the connection closes, but a reset
         * leaves the session unable to write (1031); a reset keeps SET ROLE's role. */
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
