/* resolve.h: host names resolved by a thread of their own, never on an event loop. */
#ifndef ENVPROXY_RESOLVE_H
#define ENVPROXY_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#define RESOLVE_HOST_MAX 256
#define RESOLVE_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

/* Starts the resolver thread (once, before the event loops start) and tells it to stop. */
int resolve_start(void);
void resolve_stop(void);

/* Whether host is used as it is: an IPv4 or IPv6 address, or "localhost" (a Unix socket). */
bool resolve_is_literal(const char *host);

/* Makes host one of the names kept resolved (at start-up and after a reload): the resolver
 * thread asks for a new one at once. */
void resolve_prepare(const char *host);

/* Waits until every name has had a first answer (an address or an error), or ms passed:
 * at start-up, so that the first health checks find the addresses. */
void resolve_wait(long long ms);

/* The address to connect to for host, without waiting: the address kept (the last one that
 * resolved), or host itself when it is an address. -1 with err when the name has never
 * resolved (the resolver's error, or "being resolved" while its first answer is awaited). */
int resolve_get(const char *host, char *addr, size_t cap, char *err, size_t errlen);

/* A connection to addr, an address of host, failed: the next address of the name becomes
 * the first choice. Returns how many other addresses the name has (0 for one or none). */
int resolve_failed(const char *host, const char *addr);

#endif
