/* http/console.c: GET / and /assets/... on the http: listener: the web console, built into the
 * binary (console_assets.c is generated from web/ at build time), with strict security headers. */
#include "console.h"
#include "envproxy.h"
#include "http_api.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* The page runs only its own script (no inline script, no eval), talks only to this server,
 * and may not be framed. Styles: its own file, and the <style> elements the editor makes,
 * which carry the page's nonce (a new one with every GET /). */
#define CONSOLE_CSP_FMT                                                                         \
    "default-src 'self'; script-src 'self'; style-src 'self'%s; img-src 'self' data:; "       \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                \
    "form-action 'self'; frame-ancestors 'none'"
/* Where index.html takes the nonce (a <meta> the script reads for the editor's styles). */
#define NONCE_MARK "%CSP_NONCE%"

/* The page with a fresh nonce in place of NONCE_MARK; its CSP names the nonce. */
static void send_page(struct evhttp_request *req, const console_asset *a)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    unsigned char rnd[18];
    char nonce[40], src[64], csp[512];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(rnd); i++) {
        nonce[2 * i] = hex[rnd[i] >> 4];
        nonce[2 * i + 1] = hex[rnd[i] & 15];
    }
    nonce[2 * sizeof(rnd)] = '\0';
    snprintf(src, sizeof(src), " 'nonce-%s'", nonce);
    snprintf(csp, sizeof(csp), CONSOLE_CSP_FMT, src);
    evhttp_add_header(out, "Content-Security-Policy", csp);
    evhttp_add_header(out, "Cache-Control", "no-store");
    evhttp_add_header(out, "Content-Type", a->type);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    const char *text = (const char *)a->data, *end = text + a->len;
    const char *mark = memmem(text, a->len, NONCE_MARK, strlen(NONCE_MARK));
    if (mark) {
        evbuffer_add(b, text, (size_t)(mark - text));
        evbuffer_add(b, nonce, strlen(nonce));
        text = mark + strlen(NONCE_MARK);
    }
    evbuffer_add(b, text, (size_t)(end - text));
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

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
    if (!http_framing_ok(req))
        return;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "X-Frame-Options", "DENY");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    evhttp_add_header(out, "Cross-Origin-Opener-Policy", "same-origin");
    http_conn_done(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "GET, HEAD");
        evhttp_add_header(out, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
        evhttp_send_error(req, 405, "Method Not Allowed");
        return;
    }
    if (strcmp(a->path, "/") == 0) {
        send_page(req, a);
        return;
    }
    /* Scripts and styles are not documents, but a strict policy on them costs nothing. */
    char csp[512];
    snprintf(csp, sizeof(csp), CONSOLE_CSP_FMT, "");
    evhttp_add_header(out, "Content-Security-Policy", csp);
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
