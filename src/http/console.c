/* http/console.c: GET / and /assets/... on the http: listener: the web console, built into the
 * binary (console_assets.c is generated from web/ at build time), with strict security headers. */
#include "console.h"
#include "envproxy.h"
#include "http_api.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

/* The page runs only its own script and style (no inline script, no eval), talks only to this
 * server, and may not be framed. */
#define CONSOLE_CSP                                                                             \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "         \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                \
    "form-action 'self'; frame-ancestors 'none'"

/* Whether an Accept-Encoding header allows gzip (a "gzip;q=0" refuses it). */
static bool accepts_gzip(const char *ae)
{
    for (const char *p = ae; p && (p = strstr(p, "gzip")) != NULL; p += 4) {
        const char *q = p + 4;
        while (*q == ' ')
            q++;
        if (*q == ';') {
            const char *v = strstr(q, "q=");
            if (v && v[2] == '0' && strspn(v + 3, ".0") == strcspn(v + 3, ",; "))
                return false;
        }
        return true;
    }
    return false;
}

static void asset_cb(struct evhttp_request *req, void *arg)
{
    const console_asset *a = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    evhttp_add_header(out, "Content-Security-Policy", CONSOLE_CSP);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "X-Frame-Options", "DENY");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    evhttp_add_header(out, "Cross-Origin-Opener-Policy", "same-origin");
    http_conn_done(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "GET, HEAD");
        evhttp_send_error(req, 405, "Method Not Allowed");
        return;
    }
    evhttp_add_header(out, "ETag", a->etag);
    /* Revalidated every time (cheap: 304 by ETag), so a new binary's console shows at once. */
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "Vary", "Accept-Encoding");
    const char *inm = evhttp_find_header(in, "If-None-Match");
    if (inm && strstr(inm, a->etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(out, "Content-Type", a->type);
    bool gz = accepts_gzip(evhttp_find_header(in, "Accept-Encoding"));
    if (gz)
        evhttp_add_header(out, "Content-Encoding", "gzip");
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    /* The bytes are static: referenced, not copied. */
    evbuffer_add_reference(b, gz ? a->gz : a->data, gz ? a->gz_len : a->len, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

void http_console_register(struct proxy *p, struct evhttp *http)
{
    for (int i = 0; i < console_n_assets; i++)
        evhttp_set_cb(http, console_assets[i].path, asset_cb, (void *)&console_assets[i]);
}
