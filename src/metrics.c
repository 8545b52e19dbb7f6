/* metrics.c: counters for /metrics: per worker thread (written by it alone), summed when read. */
#include "audit.h"
#include "envproxy.h"

#include <event2/buffer.h>
#include <string.h>

const double metric_bucket_bounds[METRIC_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,  0.5,  1,     5};

#define GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* The calling worker's counters (metrics_bind_worker), or NULL on other threads. */
static _Thread_local env_metrics *own_metrics;
static _Thread_local atomic_ullong *own_doors;

/* Adds n to a counter: a worker's own with a plain load and store (it is the only writer, and
 * readers see either value), a shared one with an atomic addition. */
static inline void add(atomic_ullong *x, unsigned long long n, bool own)
{
    if (own)
        atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(x, n, memory_order_relaxed);
}
#define ADD(x, n) add(&(x), (n), own)

void metrics_bind_worker(worker *w)
{
    own_metrics = w->metrics;
    own_doors = w->stmts_by_door;
}

void metrics_door(proxy *p, int door)
{
    bool own = own_doors != NULL;
    add(own ? &own_doors[door] : &p->stmts_by_door[door], 1, own);
}

/* Every counter of environment slot, summed over the shared set and each worker's. */
typedef struct {
    unsigned long long allowed, refused, error, bucket[METRIC_BUCKETS + 1], sum_us, rows, bytes;
} env_sums;

static void sum_one(env_sums *s, env_metrics *m)
{
    s->allowed += GET(m->stmt_allowed);
    s->refused += GET(m->stmt_refused);
    s->error += GET(m->stmt_error);
    for (int k = 0; k <= METRIC_BUCKETS; k++)
        s->bucket[k] += GET(m->latency_bucket[k]);
    s->sum_us += GET(m->latency_sum_us);
    s->rows += GET(m->rows_sent);
    s->bytes += GET(m->bytes_sent);
}

static env_sums env_total(proxy *p, int slot)
{
    env_sums s;
    memset(&s, 0, sizeof s);
    sum_one(&s, &p->metrics[slot]);
    for (int i = 0; i < p->n_workers; i++)
        if (p->workers && p->workers[i].metrics)
            sum_one(&s, &p->workers[i].metrics[slot]);
    return s;
}

void metrics_statement(proxy *p, int env, verdict v, double ms)
{
    bool own = own_metrics != NULL;
    env_metrics *m = own ? &own_metrics[env] : &p->metrics[env];
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
    bool own = own_metrics != NULL;
    env_metrics *m = own ? &own_metrics[env] : &p->metrics[env];
    ADD(m->rows_sent, rows);
    ADD(m->bytes_sent, bytes);
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
    for (int i = 0; i < 3; i++) {
        unsigned long long n = GET(p->stmts_by_door[i]);
        for (int k = 0; k < p->n_workers; k++)
            if (p->workers)
                n += GET(p->workers[k].stmts_by_door[i]);
        evbuffer_add_printf(b, "envproxy_statements_by_door_total{via=\"%s\"} %llu\n", doors[i],
                            n);
    }
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
        env_sums m = env_total(p, c->envs[i].slot);
        const char *n = c->envs[i].name;
        evbuffer_add_printf(b, "envproxy_statements_total{env=\"%s\",verdict=\"allowed\"} %llu\n",
                            n, m.allowed);
        evbuffer_add_printf(b, "envproxy_statements_total{env=\"%s\",verdict=\"refused\"} %llu\n",
                            n, m.refused);
        evbuffer_add_printf(b, "envproxy_statements_total{env=\"%s\",verdict=\"error\"} %llu\n",
                            n, m.error);
    }
    header(b, "envproxy_statement_duration_seconds", "histogram",
           "Time from sending a statement to the backend to the end of its response.");
    for (int i = 0; i < c->n_envs; i++) {
        env_sums m = env_total(p, c->envs[i].slot);
        const char *n = c->envs[i].name;
        unsigned long long cum = 0;
        for (int k = 0; k <= METRIC_BUCKETS; k++) {
            cum += m.bucket[k];
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
                            (double)m.sum_us / 1e6);
        evbuffer_add_printf(b, "envproxy_statement_duration_seconds_count{env=\"%s\"} %llu\n", n,
                            cum);
    }
    header(b, "envproxy_rows_sent_total", "counter", "Result rows sent to clients.");
    for (int i = 0; i < c->n_envs; i++)
        evbuffer_add_printf(b, "envproxy_rows_sent_total{env=\"%s\"} %llu\n", c->envs[i].name,
                            env_total(p, c->envs[i].slot).rows);
    header(b, "envproxy_bytes_sent_total", "counter", "Response bytes sent to clients.");
    for (int i = 0; i < c->n_envs; i++)
        evbuffer_add_printf(b, "envproxy_bytes_sent_total{env=\"%s\"} %llu\n", c->envs[i].name,
                            env_total(p, c->envs[i].slot).bytes);

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
