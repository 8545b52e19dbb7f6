/* throttle.c: failed-login throttling per client address.
 *
 * After login_throttle.max_failures failed logins from one address within
 * login_throttle.window, further logins from it are refused for login_throttle.block
 * (ERR 1129, as MySQL refuses a host after too many connection errors), without looking at
 * the credentials. A successful login clears the address's count. The table is bounded:
 * when full, entries whose window and block are over are dropped, then the oldest. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define THROTTLE_MAX_ENTRIES 4096

typedef struct {
    char host[48];
    int failures;
    uint64_t window_start_ms, blocked_until_ms;
} throttle_entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static throttle_entry entries[THROTTLE_MAX_ENTRIES];
static int n_entries;
static atomic_ullong n_throttled;

static throttle_entry *find(const char *host)
{
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].host, host) == 0)
            return &entries[i];
    return NULL;
}

/* A free slot: past entries are recycled first, then the oldest window. */
static throttle_entry *slot(uint64_t now, const config *c)
{
    if (n_entries < THROTTLE_MAX_ENTRIES)
        return &entries[n_entries++];
    int oldest = 0;
    for (int i = 0; i < n_entries; i++) {
        throttle_entry *e = &entries[i];
        if (now >= e->blocked_until_ms &&
            now - e->window_start_ms >= (uint64_t)c->throttle_window_ms)
            return e;
        if (e->window_start_ms < entries[oldest].window_start_ms)
            oldest = i;
    }
    return &entries[oldest];
}

bool throttle_blocked(const config *c, const char *host)
{
    if (c->throttle_max_failures <= 0)
        return false;
    uint64_t now = now_ms();
    pthread_mutex_lock(&mu);
    throttle_entry *e = find(host);
    bool blocked = e && now < e->blocked_until_ms;
    pthread_mutex_unlock(&mu);
    if (blocked)
        atomic_fetch_add(&n_throttled, 1);
    return blocked;
}

void throttle_failure(const config *c, const char *host)
{
    if (c->throttle_max_failures <= 0)
        return;
    uint64_t now = now_ms();
    pthread_mutex_lock(&mu);
    throttle_entry *e = find(host);
    if (!e) {
        e = slot(now, c);
        memset(e, 0, sizeof(*e));
        snprintf(e->host, sizeof(e->host), "%s", host);
        e->window_start_ms = now;
    }
    if (now - e->window_start_ms >= (uint64_t)c->throttle_window_ms) {
        e->window_start_ms = now;
        e->failures = 0;
    }
    if (++e->failures >= c->throttle_max_failures && now >= e->blocked_until_ms) {
        e->blocked_until_ms = now + (uint64_t)c->throttle_block_ms;
        log_warn("%s: %d failed logins within %lld ms; refusing its logins for %lld ms", host,
                 e->failures, c->throttle_window_ms, c->throttle_block_ms);
    }
    pthread_mutex_unlock(&mu);
}

void throttle_success(const char *host)
{
    pthread_mutex_lock(&mu);
    throttle_entry *e = find(host);
    if (e && now_ms() >= e->blocked_until_ms)
        e->failures = 0;
    pthread_mutex_unlock(&mu);
}

unsigned long long throttle_refused(void)
{
    return atomic_load(&n_throttled);
}
