/* throttle.c: failed-login throttling per client address and per account.
 *
 * Failed logins are counted per (address, account name) pair within
 * login_throttle.window. When the failures of one address (over all names) reach
 * login_throttle.max_failures, the address's logins are refused for login_throttle.block
 * (ERR 1129, as MySQL refuses a host after too many connection errors); when the failures
 * against one account name (from all addresses) reach it, that account's logins are refused
 * for the same time (ERR 3955). Both are checked before any credential is looked at, for
 * new connections and COM_CHANGE_USER alike. A successful login forgets only that
 * account's failures: logging in correctly as one account does not excuse guessing the
 * password of another, and a success from one address does not excuse failures from
 * another. Names are counted whether or not an account has them, so the
 * throttle tells nothing about which accounts exist.
 *
 * The table is bounded: when full, entries whose window and block are over are reused,
 * then the oldest. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define THROTTLE_MAX_ENTRIES 4096

typedef enum { E_FREE, E_PAIR, E_HOST, E_ACCOUNT } entry_kind;

/* E_PAIR counts failures; E_HOST and E_ACCOUNT hold a block. */
typedef struct {
    entry_kind kind;
    char host[48];
    char user[ROUTE_NAME_MAX + 1];
    int failures;
    uint64_t window_start_ms, blocked_until_ms;
} throttle_entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static throttle_entry entries[THROTTLE_MAX_ENTRIES];
static int n_entries;
static atomic_ullong n_throttled;

static bool live_pair(const throttle_entry *e, uint64_t now, const config *c)
{
    return e->kind == E_PAIR && now - e->window_start_ms < (uint64_t)c->throttle_window_ms;
}

static throttle_entry *find(entry_kind kind, const char *host, const char *user)
{
    for (int i = 0; i < n_entries; i++) {
        throttle_entry *e = &entries[i];
        if (e->kind == kind && (!host || strcmp(e->host, host) == 0) &&
            (!user || strcmp(e->user, user) == 0))
            return e;
    }
    return NULL;
}

/* A free slot: unused and past entries are recycled first, then the oldest failure count
 * (a block in force goes last: a flood of failures must not lift it). */
static throttle_entry *slot(uint64_t now, const config *c)
{
    if (n_entries < THROTTLE_MAX_ENTRIES)
        return &entries[n_entries++];
    int oldest = -1, oldest_block = 0;
    for (int i = 0; i < n_entries; i++) {
        throttle_entry *e = &entries[i];
        if (e->kind == E_FREE ||
            (now >= e->blocked_until_ms &&
             now - e->window_start_ms >= (uint64_t)c->throttle_window_ms))
            return e;
        if (e->kind == E_PAIR) {
            if (oldest < 0 || e->window_start_ms < entries[oldest].window_start_ms)
                oldest = i;
        } else if (e->blocked_until_ms < entries[oldest_block].blocked_until_ms) {
            oldest_block = i;
        }
    }
    return &entries[oldest >= 0 ? oldest : oldest_block];
}

static throttle_entry *get(entry_kind kind, const char *host, const char *user, uint64_t now,
                           const config *c)
{
    throttle_entry *e = find(kind, host, user);
    if (!e) {
        e = slot(now, c);
        memset(e, 0, sizeof(*e));
        e->kind = kind;
        snprintf(e->host, sizeof(e->host), "%s", host ? host : "");
        snprintf(e->user, sizeof(e->user), "%s", user ? user : "");
        e->window_start_ms = now;
    }
    return e;
}

/* Failures within the window: of the address (user NULL) or of the account (host NULL). */
static int failures(const char *host, const char *user, uint64_t now, const config *c)
{
    int n = 0;
    for (int i = 0; i < n_entries; i++) {
        const throttle_entry *e = &entries[i];
        if (live_pair(e, now, c) && (!host || strcmp(e->host, host) == 0) &&
            (!user || strcmp(e->user, user) == 0))
            n += e->failures;
    }
    return n;
}

throttle_verdict throttle_blocked(const config *c, const char *host, const char *user)
{
    if (c->throttle_max_failures <= 0)
        return THROTTLE_OK;
    uint64_t now = now_ms();
    throttle_verdict v = THROTTLE_OK;
    pthread_mutex_lock(&mu);
    const throttle_entry *h = find(E_HOST, host, NULL);
    const throttle_entry *a = find(E_ACCOUNT, NULL, user);
    if (h && now < h->blocked_until_ms)
        v = THROTTLE_HOST;
    else if (a && now < a->blocked_until_ms)
        v = THROTTLE_ACCOUNT;
    pthread_mutex_unlock(&mu);
    if (v != THROTTLE_OK)
        atomic_fetch_add(&n_throttled, 1);
    return v;
}

void throttle_failure(const config *c, const char *host, const char *user)
{
    if (c->throttle_max_failures <= 0)
        return;
    uint64_t now = now_ms();
    pthread_mutex_lock(&mu);
    throttle_entry *e = get(E_PAIR, host, user, now, c);
    if (now - e->window_start_ms >= (uint64_t)c->throttle_window_ms) {
        e->window_start_ms = now;
        e->failures = 0;
    }
    e->failures++;
    int by_host = failures(host, NULL, now, c), by_user = failures(NULL, user, now, c);
    if (by_host >= c->throttle_max_failures) {
        throttle_entry *h = get(E_HOST, host, NULL, now, c);
        if (now >= h->blocked_until_ms) {
            h->blocked_until_ms = now + (uint64_t)c->throttle_block_ms;
            h->window_start_ms = now;
            log_warn("%s: %d failed logins within %lld ms; refusing its logins for %lld ms",
                     host, by_host, c->throttle_window_ms, c->throttle_block_ms);
        }
    }
    if (by_user >= c->throttle_max_failures) {
        throttle_entry *a = get(E_ACCOUNT, NULL, user, now, c);
        if (now >= a->blocked_until_ms) {
            a->blocked_until_ms = now + (uint64_t)c->throttle_block_ms;
            a->window_start_ms = now;
            log_warn("user '%s': %d failed logins within %lld ms; refusing its logins for "
                     "%lld ms",
                     user, by_user, c->throttle_window_ms, c->throttle_block_ms);
        }
    }
    pthread_mutex_unlock(&mu);
}

void throttle_success(const char *host, const char *user)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_entries; i++) {
        throttle_entry *e = &entries[i];
        if (e->kind == E_PAIR && strcmp(e->user, user) == 0 && strcmp(e->host, host) == 0)
            e->kind = E_FREE;
    }
    pthread_mutex_unlock(&mu);
}

unsigned long long throttle_refused(void)
{
    return atomic_load(&n_throttled);
}
