/* metrics.c: counters for /metrics, updated with relaxed atomics from any thread. */
#include "audit.h"
#include "envproxy.h"

#include <event2/buffer.h>
#include <string.h>

const double metric_bucket_bounds[METRIC_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,  0.5,  1,     5};

#define ADD(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

void metrics_statement(proxy *p, int env, verdict v, double ms)
{
    env_metrics *m = &p->metrics[env];
    switch (v) {
    case VERDICT_ALLOWED:
        ADD(m->stmt_allowed, 1);
        break;
    case VERDICT_REFUSED:
        ADD(m->stmt_refused, 1);
        break;
    case VERDICT_ERROR:
        ADD(m->stmt_error, 1);
        break;
    }
    if (ms < 0)
        return;
    int b = 0;
    while (b < METRIC_BUCKETS && ms / 1000.0 > metric_bucket_bounds[b])
        b++;
    ADD(m->latency_bucket[b], 1);
    ADD(m->latency_sum_us, (unsigned long long)(ms * 1000.0));
}

void metrics_rows(proxy *p, int env, unsigned long long rows, unsigned long long bytes)
{
    ADD(p->metrics[env].rows_sent, rows);
    ADD(p->metrics[env].bytes_sent, bytes);
}

static void header(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_render(proxy *p, struct evbuffer *b)
{
    const config *c = p->cfg;
    header(b, "envproxy_client_connections", "gauge", "Client connections open now.");
    evbuffer_add_printf(b, "envproxy_client_connections %lld\n", (long long)GET(p->clients_current));
    header(b, "envproxy_client_connections_total", "counter", "Client connections accepted.");
    evbuffer_add_printf(b, "envproxy_client_connections_total %llu\n",
                        (unsigned long long)GET(p->clients_total));
    header(b, "envproxy_logins_refused_total", "counter",
           "Logins refused (wrong user or password, throttled).");
    evbuffer_add_printf(b, "envproxy_logins_refused_total %llu\n",
                        (unsigned long long)GET(p->logins_refused));

    header(b, "envproxy_statements_by_door_total", "counter",
           "Statements by the door they came in by: the MySQL port, the HTTP API, MCP over HTTP.");
    static const char *const doors[] = {"mysql", "http", "mcp"};
    for (int i = 0; i < 3; i++)
        evbuffer_add_printf(b, "envproxy_statements_by_door_total{via=\"%s\"} %llu\n", doors[i],
                            (unsigned long long)GET(p->stmts_by_door[i]));
    header(b, "envproxy_http_api_responses_total", "counter",
           "Answers of /api/v1 and /mcp by HTTP status class.");
    for (int i = 1; i < 6; i++)
        evbuffer_add_printf(b, "envproxy_http_api_responses_total{status=\"%dxx\"} %llu\n", i,
                            (unsigned long long)GET(p->http_api_status[i]));

    header(b, "envproxy_logins_throttled_total", "counter",
           "Logins refused because their address failed too often (login_throttle).");
    evbuffer_add_printf(b, "envproxy_logins_throttled_total %llu\n", throttle_refused());
    header(b, "envproxy_statements_total", "counter", "Statements by environment and verdict.");
    for (int i = 0; i < c->n_envs; i++) {
        env_metrics *m = &p->metrics[c->envs[i].slot];
        const char *n = c->envs[i].name;
        evbuffer_add_printf(b, "envproxy_statements_total{env=\"%s\",verdict=\"allowed\"} %llu\n",
                            n, (unsigned long long)GET(m->stmt_allowed));
        evbuffer_add_printf(b, "envproxy_statements_total{env=\"%s\",verdict=\"refused\"} %llu\n",
                            n, (unsigned long long)GET(m->stmt_refused));
        evbuffer_add_printf(b, "envproxy_statements_total{env=\"%s\",verdict=\"error\"} %llu\n",
                            n, (unsigned long long)GET(m->stmt_error));
    }
    header(b, "envproxy_statement_duration_seconds", "histogram",
           "Time from sending a statement to the backend to the end of its response.");
    for (int i = 0; i < c->n_envs; i++) {
        env_metrics *m = &p->metrics[c->envs[i].slot];
        const char *n = c->envs[i].name;
        unsigned long long cum = 0;
        for (int k = 0; k <= METRIC_BUCKETS; k++) {
            cum += GET(m->latency_bucket[k]);
            if (k < METRIC_BUCKETS)
                evbuffer_add_printf(b,
                                    "envproxy_statement_duration_seconds_bucket{env=\"%s\","
                                    "le=\"%g\"} %llu\n",
                                    n, metric_bucket_bounds[k], cum);
            else
                evbuffer_add_printf(b,
                                    "envproxy_statement_duration_seconds_bucket{env=\"%s\","
                                    "le=\"+Inf\"} %llu\n",
                                    n, cum);
        }
        evbuffer_add_printf(b, "envproxy_statement_duration_seconds_sum{env=\"%s\"} %.6f\n", n,
                            (double)GET(m->latency_sum_us) / 1e6);
        evbuffer_add_printf(b, "envproxy_statement_duration_seconds_count{env=\"%s\"} %llu\n", n,
                            cum);
    }
    header(b, "envproxy_rows_sent_total", "counter", "Result rows sent to clients.");
    for (int i = 0; i < c->n_envs; i++)
        evbuffer_add_printf(b, "envproxy_rows_sent_total{env=\"%s\"} %llu\n", c->envs[i].name,
                            (unsigned long long)GET(p->metrics[c->envs[i].slot].rows_sent));
    header(b, "envproxy_bytes_sent_total", "counter", "Response bytes sent to clients.");
    for (int i = 0; i < c->n_envs; i++)
        evbuffer_add_printf(b, "envproxy_bytes_sent_total{env=\"%s\"} %llu\n", c->envs[i].name,
                            (unsigned long long)GET(p->metrics[c->envs[i].slot].bytes_sent));

    header(b, "envproxy_pool_connections", "gauge",
           "Backend connections by environment and state (in_use, idle, max).");
    header(b, "envproxy_pool_waiting", "gauge", "Clients waiting for a backend connection.");
    header(b, "envproxy_backend_connect_errors_total", "counter",
           "Backend connections that could not be opened.");
    header(b, "envproxy_environment_up", "gauge", "1 when the last health check succeeded.");
    header(b, "envproxy_backend_writable", "gauge",
           "1 when envproxy's backend account can change things (SHOW GRANTS), 0 when it can "
           "only read, -1 when not known yet.");
    for (int i = 0; i < c->n_envs; i++) {
        const char *n = c->envs[i].name;
        int slot = c->envs[i].slot;
        int in_use, idle, waiting;
        pool_stats(p->pools[slot], &in_use, &idle, &waiting);
        health_view hv;
        health_get(&p->health[slot], &hv);
        evbuffer_add_printf(b, "envproxy_pool_connections{env=\"%s\",state=\"in_use\"} %d\n", n,
                            in_use);
        evbuffer_add_printf(b, "envproxy_pool_connections{env=\"%s\",state=\"idle\"} %d\n", n, idle);
        evbuffer_add_printf(b, "envproxy_pool_connections{env=\"%s\",state=\"max\"} %d\n", n,
                            c->envs[i].pool.max);
        evbuffer_add_printf(b, "envproxy_pool_waiting{env=\"%s\"} %d\n", n, waiting);
        evbuffer_add_printf(b, "envproxy_backend_connect_errors_total{env=\"%s\"} %llu\n", n,
                            (unsigned long long)GET(p->pools[slot]->connect_errors));
        evbuffer_add_printf(b, "envproxy_environment_up{env=\"%s\"} %d\n", n,
                            hv.known && hv.up ? 1 : 0);
        evbuffer_add_printf(b, "envproxy_backend_writable{env=\"%s\"} %d\n", n, hv.writable);
    }
    header(b, "envproxy_audit_written_total", "counter", "Audit lines written to the file.");
    evbuffer_add_printf(b, "envproxy_audit_written_total %llu\n",
                        (unsigned long long)audit_written(p->audit));
    header(b, "envproxy_audit_dropped_total", "counter",
           "Audit records dropped because a worker's audit buffer was full.");
    evbuffer_add_printf(b, "envproxy_audit_dropped_total %llu\n",
                        (unsigned long long)proxy_audit_drops(p));
    header(b, "envproxy_audit_write_errors_total", "counter",
           "Audit lines lost because writing the file failed (disk full, I/O error).");
    evbuffer_add_printf(b, "envproxy_audit_write_errors_total %llu\n",
                        (unsigned long long)audit_write_errors(p->audit));
}
