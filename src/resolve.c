/* resolve.c: the environments' host names, resolved off the event loops.
 *
 * Connector/C resolves a host name with getaddrinfo() inside mysql_real_connect_start(),
 * which blocks: a slow or unreachable DNS server would stop a worker (and every client on
 * it) for the resolver's whole timeout at each new backend connection. So the loops never
 * ask: a thread of its own resolves every host name the configuration names, keeps the
 * answer, and renews it every RESOLVE_REFRESH_MS; connections are opened to the address
 * kept. When a renewal fails, the last address that worked is kept (a DNS outage does not
 * take the environments down); a name that never resolved fails its connections at once
 * with the resolver's error. An IP address, and "localhost" (Connector/C's Unix socket),
 * are used as they are.
 */
#include "resolve.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RESOLVE_MAX_HOSTS 256
#define RESOLVE_REFRESH_MS 30000
#define RESOLVE_RETRY_MS 2000 /* after a failure */

#define RESOLVE_MAX_ADDRS 4

typedef struct {
    char host[RESOLVE_HOST_MAX];
    /* As getaddrinfo orders them; connections go to addrs[cur], the next one after a
     * connection to it failed (as Connector/C tries each in turn). */
    char addrs[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_MAX];
    int n_addrs, cur;
    char addr[RESOLVE_ADDR_MAX]; /* addrs[cur]; "" until it first resolves */
    char error[400];             /* the last failure, "" after a success */
    uint64_t next_ms;            /* when to resolve again */
    uint64_t last_ms;            /* when it was last resolved (tried) */
    bool wanted;                 /* asked for now */
    bool busy;                   /* a lookup of it is under way */
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_cond_t answered; /* an entry got its first answer */
static entry entries[RESOLVE_MAX_HOSTS];
static int n_entries;
static pthread_t thread;
static bool running, stopping;
static int lookups; /* under way, each on a thread of its own */

/* At most this many names are looked up at once: a name whose DNS server does not answer
 * holds one lookup for the resolver's whole timeout, not the renewal of every other name. */
#define RESOLVE_MAX_LOOKUPS 4

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool resolve_is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

/* getaddrinfo as Connector/C would call it (TCP, any family): up to RESOLVE_MAX_ADDRS
 * distinct addresses in its order. Returns how many, or -1 with err. */
static int lookup(const char *host, char (*addrs)[RESOLVE_ADDR_MAX], char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve host name '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
        const void *a;
        if (ai->ai_family == AF_INET6)
            a = &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        else if (ai->ai_family == AF_INET)
            a = &((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        else
            continue;
        if (!inet_ntop(ai->ai_family, a, addrs[n], RESOLVE_ADDR_MAX))
            continue;
        bool seen = false;
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(addrs[k], addrs[n]) == 0;
        if (!seen)
            n++;
    }
    freeaddrinfo(res);
    if (n == 0) {
        snprintf(err, errlen, "cannot resolve host name '%s': no usable address", host);
        return -1;
    }
    return n;
}

/* Resolves e (the lock not held) and stores the outcome. */
static void renew(int i)
{
    char host[RESOLVE_HOST_MAX], addrs[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_MAX], err[400];
    pthread_mutex_lock(&mu);
    snprintf(host, sizeof(host), "%s", entries[i].host);
    entries[i].wanted = false;
    pthread_mutex_unlock(&mu);
    int n = lookup(host, addrs, err, sizeof(err));
    char note[600] = ""; /* logged once the lock is let go */
    bool warn = false;
    pthread_mutex_lock(&mu);
    entry *e = &entries[i];
    e->last_ms = mono_ms();
    if (n > 0) {
        /* The address in use stays first choice while the name still has it. */
        int cur = 0;
        for (int k = 0; k < n; k++)
            if (strcmp(addrs[k], e->addr) == 0)
                cur = k;
        if (strcmp(e->addr, addrs[cur]) != 0)
            snprintf(note, sizeof(note), "host %s resolves to %s%s%s%s", host, addrs[cur],
                     n > 1 ? " (and more)" : "", e->addr[0] ? ", was " : "",
                     e->addr[0] ? e->addr : "");
        else if (e->error[0])
            snprintf(note, sizeof(note), "host %s resolves again", host);
        memcpy(e->addrs, addrs, sizeof(addrs));
        e->n_addrs = n;
        e->cur = cur;
        memcpy(e->addr, addrs[cur], sizeof(e->addr));
        e->error[0] = '\0';
        e->next_ms = mono_ms() + RESOLVE_REFRESH_MS;
    } else {
        if (strcmp(e->error, err) != 0) {
            snprintf(note, sizeof(note), "%s%s%s", err, e->addr[0] ? "; still using " : "",
                     e->addr[0] ? e->addr : "");
            warn = true;
        }
        snprintf(e->error, sizeof(e->error), "%s", err);
        e->next_ms = mono_ms() + RESOLVE_RETRY_MS;
    }
    pthread_cond_broadcast(&answered);
    pthread_mutex_unlock(&mu);
    if (note[0] && warn)
        log_warn("%s", note);
    else if (note[0])
        log_info("%s", note);
}

static void *lookup_main(void *arg)
{
    int i = (int)(intptr_t)arg;
    renew(i);
    pthread_mutex_lock(&mu);
    entries[i].busy = false;
    lookups--;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *resolver_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        uint64_t now = mono_ms();
        int due = -1;
        uint64_t next = now + 1000;
        for (int i = 0; i < n_entries && due < 0; i++) {
            if (entries[i].busy)
                continue;
            if (entries[i].wanted || entries[i].next_ms <= now)
                due = i;
            else if (entries[i].next_ms < next)
                next = entries[i].next_ms;
        }
        if (due >= 0 && lookups < RESOLVE_MAX_LOOKUPS) {
            entries[due].busy = true;
            lookups++;
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            bool started = pthread_create(&t, &attr, lookup_main, (void *)(intptr_t)due) == 0;
            pthread_attr_destroy(&attr);
            if (!started) { /* out of threads: look it up here */
                pthread_mutex_unlock(&mu);
                lookup_main((void *)(intptr_t)due);
                pthread_mutex_lock(&mu);
            }
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t wait = next - now;
        until.tv_sec += (time_t)(wait / 1000);
        until.tv_nsec += (long)(wait % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cond, &mu, &until);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* The entry of host, added when new (the lock held); -1 when the table is full. */
static int find_or_add(const char *host)
{
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].host, host) == 0)
            return i;
    if (n_entries == RESOLVE_MAX_HOSTS)
        return -1;
    entry *e = &entries[n_entries];
    memset(e, 0, sizeof(*e));
    snprintf(e->host, sizeof(e->host), "%s", host);
    e->wanted = true;
    return n_entries++;
}

void resolve_prepare(const char *host)
{
    if (!host || !*host || resolve_is_literal(host) || strlen(host) >= RESOLVE_HOST_MAX)
        return;
    pthread_mutex_lock(&mu);
    int i = find_or_add(host);
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    if (i < 0)
        log_warn("host %s: more than %d host names to resolve; connections to it resolve "
                 "the name themselves",
                 host, RESOLVE_MAX_HOSTS);
}

void resolve_wait(long long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&mu);
    for (;;) {
        bool waiting = false;
        for (int i = 0; i < n_entries && !waiting; i++)
            waiting = !entries[i].addr[0] && !entries[i].error[0];
        if (!waiting || pthread_cond_timedwait(&answered, &mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&mu);
}

int resolve_get(const char *host, char *addr, size_t cap, char *err, size_t errlen)
{
    if (resolve_is_literal(host) || strlen(host) >= RESOLVE_HOST_MAX) {
        snprintf(addr, cap, "%s", host);
        return 0;
    }
    int rc;
    pthread_mutex_lock(&mu);
    int i = find_or_add(host);
    if (i < 0) {
        snprintf(addr, cap, "%s", host); /* the table is full: Connector/C resolves it */
        rc = 0;
    } else if (entries[i].addr[0]) {
        snprintf(addr, cap, "%s", entries[i].addr);
        rc = 0;
    } else {
        snprintf(err, errlen, "%s",
                 entries[i].error[0] ? entries[i].error : "the host name is being resolved");
        entries[i].wanted = true;
        pthread_cond_signal(&cond);
        rc = -1;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int resolve_failed(const char *host, const char *addr)
{
    int left = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_entries; i++) {
        entry *e = &entries[i];
        if (strcmp(e->host, host) != 0)
            continue;
        if (e->n_addrs > 1 && strcmp(e->addr, addr) == 0) {
            e->cur = (e->cur + 1) % e->n_addrs;
            memcpy(e->addr, e->addrs[e->cur], sizeof(e->addr));
        }
        left = e->n_addrs - 1;
        /* The server may have moved (a new address after a restart): ask DNS again now
         * rather than at the next renewal, at most once a second. */
        if (!e->wanted && mono_ms() - e->last_ms >= 1000) {
            e->wanted = true;
            pthread_cond_signal(&cond);
        }
        break;
    }
    pthread_mutex_unlock(&mu);
    return left;
}

int resolve_start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_cond_init(&answered, &ca);
    pthread_condattr_destroy(&ca);
    stopping = false;
    if (pthread_create(&thread, NULL, resolver_main, NULL) != 0)
        return -1;
    /* Never joined: a getaddrinfo under way may take the resolver's whole timeout, which a
     * shutdown does not wait for. */
    pthread_detach(thread);
    running = true;
    return 0;
}

void resolve_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    running = false;
}
