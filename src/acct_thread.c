/* acct_thread.c: the account store's own thread (include/acct_thread.h).
 *
 * The thread waits on a condition variable for jobs, and at least once a second checks the
 * store for changes (proxy_accounts_poll). A job that ran goes on a list the main loop takes
 * from when the thread activates its event (the main loop's base is made with libevent's
 * locking, so event_active from here is allowed). */
#include "acct_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "envproxy.h"
#include "log.h"

#define ACCT_POLL_MS 1000

struct acct_thread {
    proxy *p;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    acct_job *queue, **queue_tail; /* to run, in order */
    acct_job *ran, **ran_tail;     /* run, for the main loop to deliver */
    bool quit;
    struct event *done_ev; /* on the main loop: delivers what ran */
};

static void job_append(acct_job ***tail, acct_job *j)
{
    j->next = NULL;
    **tail = j;
    *tail = &j->next;
}

static void *thread_main(void *arg)
{
    struct acct_thread *t = arg;
    proxy *p = t->p;
    uint64_t next_poll = now_ms() + ACCT_POLL_MS;
    pthread_mutex_lock(&t->mu);
    while (!t->quit) {
        /* The check comes first when it is due: a stream of jobs does not put it off. */
        uint64_t now = now_ms();
        if (now >= next_poll) {
            pthread_mutex_unlock(&t->mu);
            proxy_accounts_poll(p);
            next_poll = now_ms() + ACCT_POLL_MS;
            pthread_mutex_lock(&t->mu);
            continue;
        }
        acct_job *j = t->queue;
        if (j) {
            t->queue = j->next;
            if (!t->queue)
                t->queue_tail = &t->queue;
            pthread_mutex_unlock(&t->mu);
            j->changed = false;
            j->run(j, p->store);
            if (j->changed)
                proxy_accounts_changed(p);
            pthread_mutex_lock(&t->mu);
            job_append(&t->ran_tail, j);
            event_active(t->done_ev, EV_READ, 1);
            continue;
        }
        /* The condition variable's clock is CLOCK_MONOTONIC (acct_thread_start). */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = next_poll - now;
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->cond, &t->mu, &ts);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* On the main loop: hands every job that ran to its done(). */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct acct_thread *t = arg;
    pthread_mutex_lock(&t->mu);
    acct_job *j = t->ran;
    t->ran = NULL;
    t->ran_tail = &t->ran;
    pthread_mutex_unlock(&t->mu);
    while (j) {
        acct_job *next = j->next;
        j->done(j, true);
        j = next;
    }
}

int acct_thread_start(proxy *p)
{
    struct acct_thread *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    t->p = p;
    t->queue_tail = &t->queue;
    t->ran_tail = &t->ran;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->done_ev = event_new(p->base, -1, 0, done_cb, t);
    if (!t->done_ev || pthread_create(&t->tid, NULL, thread_main, t) != 0) {
        if (t->done_ev)
            event_free(t->done_ev);
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -1;
    }
    p->acct_thread = t;
    return 0;
}

void acct_thread_submit(proxy *p, acct_job *j)
{
    struct acct_thread *t = p->acct_thread;
    pthread_mutex_lock(&t->mu);
    job_append(&t->queue_tail, j);
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

static void reload_run(acct_job *j, acct_store *s)
{
    (void)s;
    j->changed = true; /* the thread reads it all again (proxy_accounts_changed) */
}

static void reload_done(acct_job *j, bool deliver)
{
    (void)deliver;
    free(j);
}

void acct_thread_reload(proxy *p)
{
    acct_job *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->run = reload_run;
    j->done = reload_done;
    acct_thread_submit(p, j);
}

void acct_thread_stop(proxy *p)
{
    struct acct_thread *t = p->acct_thread;
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->quit = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    acct_job *lists[2] = {t->ran, t->queue};
    for (int i = 0; i < 2; i++) {
        for (acct_job *j = lists[i]; j;) {
            acct_job *next = j->next;
            j->done(j, false);
            j = next;
        }
    }
    event_free(t->done_ev);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    free(t);
    p->acct_thread = NULL;
}
