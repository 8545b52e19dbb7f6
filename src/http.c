/* http.c: GET /health and GET /metrics (Prometheus text) on the main loop, via evhttp. */
#include "envproxy.h"
#include "http_api.h"
#include "log.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

static void json_string(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(b, "\\u%04x", ch);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void health_cb(struct evhttp_request *req, void *arg)
{
    proxy *p = arg;
    struct evbuffer *b = evbuffer_new();
    bool serving = !atomic_load(&p->draining) && !atomic_load(&p->stopping);
    evbuffer_add_printf(b, "{\"status\":\"%s\",\"environments\":[",
                        serving ? "serving" : "stopping");
    const config *cfg = p->cfg;
    for (int i = 0; i < cfg->n_envs; i++) {
        health_view hv;
        health_get(&p->health[cfg->envs[i].slot], &hv);
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        json_string(b, cfg->envs[i].name);
        evbuffer_add_printf(b, ",\"status\":\"%s\"",
                            hv.known ? (hv.up ? "up" : "down") : "unknown");
        if (hv.known && hv.up)
            evbuffer_add_printf(b, ",\"latency_ms\":%.3f", hv.latency_ms);
        if (hv.known && !hv.up) {
            evbuffer_add_printf(b, ",\"last_error\":");
            json_string(b, hv.last_error);
        }
        evbuffer_add_printf(b, ",\"checked_at\":%lld}", hv.checked_at);
    }
    evbuffer_add_printf(b, "]}\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, serving ? 200 : 503, serving ? "OK" : "Service Unavailable", b);
    evbuffer_free(b);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
    proxy *p = arg;
    struct evbuffer *b = evbuffer_new();
    metrics_render(p, b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void other_cb(struct evhttp_request *req, void *arg)
{
    evhttp_send_error(req, 404, "Not Found: try /health or /metrics");
}

int http_start(proxy *p)
{
    const cfg_addr *a = p->cfg->http;
    if (!a)
        return 0;
    p->http = evhttp_new(p->base);
    if (!p->http)
        return -1;
    evhttp_set_allowed_methods(p->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(p->http, "/health", health_cb, p);
    evhttp_set_cb(p->http, "/metrics", metrics_cb, p);
    evhttp_set_gencb(p->http, other_cb, p);
    http_api_register(p, p->http); /* /api/v1 (http_api.c); other paths still get 404 */
    evhttp_set_timeout(p->http, 10);
    if (!evhttp_bind_socket_with_handle(p->http, a->host, (ev_uint16_t)a->port)) {
        log_error("http: cannot listen on %s:%d", a->host, a->port);
        evhttp_free(p->http);
        p->http = NULL;
        return -1;
    }
    log_info("http: /health and /metrics on %s:%d", a->host, a->port);
    return 0;
}

void http_stop(proxy *p)
{
    if (p->http) {
        evhttp_free(p->http);
        p->http = NULL;
        http_mcp_shutdown();
    }
}
