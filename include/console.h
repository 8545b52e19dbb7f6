/* console.h: the web console's assets, built into the binary (web/, web/embed.mjs), and the
 * routes that serve them on the http: listener (http/console.c). */
#ifndef ENVPROXY_CONSOLE_H
#define ENVPROXY_CONSOLE_H

#include <stddef.h>

typedef struct {
    const char *path; /* "/", "/assets/app.js", ... */
    const char *type; /* Content-Type */
    const char *etag; /* quoted */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz; /* the same bytes gzipped */
    size_t gz_len;
} console_asset;

extern const console_asset console_assets[];
extern const int console_n_assets;

struct proxy;
struct evhttp;
/* Serves GET/HEAD of every asset at its path, with the console's security headers. */
void http_console_register(struct proxy *p, struct evhttp *http);

#endif
