/* A getaddrinfo() for tests, preloaded into the proxy (LD_PRELOAD): names under ".test"
 * resolve without DNS, so that a test can make name resolution slow or fail.
 *   NAME.fast.test   127.0.0.1 at once
 *   NAME.slow.test   127.0.0.1 after DNS_SHIM_DELAY_MS (default 3000) milliseconds
 *   NAME.none.test   EAI_NONAME
 *   NAME.dual.test   127.0.0.2 (where no test server listens), then 127.0.0.1
 *   NAME.moving.test the address written in the file DNS_SHIM_MOVING_FILE, read at each call
 * Every other name goes to the C library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && ends_with(node, ".none.test"))
        return EAI_NONAME;
    if (node && ends_with(node, ".slow.test")) {
        const char *d = getenv("DNS_SHIM_DELAY_MS");
        long ms = d ? atol(d) : 3000;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return real("127.0.0.1", service, hints, res);
    }
    if (node && ends_with(node, ".dual.test")) {
        struct addrinfo *first = NULL, *second = NULL;
        int rc = real("127.0.0.2", service, hints, &first);
        if (rc != 0)
            return rc;
        rc = real("127.0.0.1", service, hints, &second);
        if (rc != 0) {
            freeaddrinfo(first);
            return rc;
        }
        struct addrinfo *last = first;
        while (last->ai_next)
            last = last->ai_next;
        last->ai_next = second; /* glibc's freeaddrinfo frees node by node */
        *res = first;
        return 0;
    }
    if (node && ends_with(node, ".moving.test")) {
        char addr[64] = "";
        const char *path = getenv("DNS_SHIM_MOVING_FILE");
        FILE *f = path ? fopen(path, "r") : NULL;
        if (f) {
            if (!fgets(addr, sizeof(addr), f))
                addr[0] = '\0';
            fclose(f);
        }
        addr[strcspn(addr, "\r\n")] = '\0';
        return addr[0] ? real(addr, service, hints, res) : EAI_NONAME;
    }
    if (node && ends_with(node, ".fast.test"))
        return real("127.0.0.1", service, hints, res);
    return real(node, service, hints, res);
}
