/* virtual.c: the __envs and __compare schemas, fan-out (/\* env=a,b *\/) and compare
 * (/\* compare=a,b *\/), answered by the proxy.
 *
 * Statements that need backends (__envs.databases, fan-out, __compare) run as a job of side
 * tasks: one connection of its own per environment, opened, made read-only and given the
 * statement concurrently, each bounded by a deadline. Rows arrive into in-memory tables
 * (vquery.h) of at most max_rows rows per environment (and VIRTUAL_MAX_ROWS in all), and the
 * answer is built once every task ended or the deadline passed. A client that leaves
 * meanwhile just drops the job; its tasks finish on their own and free themselves. */
#include "envproxy.h"
#include "log.h"
#include "compare.h"
#include "vquery.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VIRTUAL_MAX_ROWS 100000 /* rows held in memory per environment for compare */
/* Bytes of values held in memory for one fan-out or compare, all environments together: a
 * result larger than that fails with an error rather than growing the proxy (10,000 rows of
 * 1 MB each are 10 GB). */
#define VIRTUAL_MAX_BYTES ((size_t)64 << 20)
/* And for all of them at once, in the whole process: many sessions each within its own
 * bound must not add up to more memory than the machine has. */
#define VIRTUAL_MAX_TOTAL ((size_t)256 << 20)
#define VIRTUAL_TIMEOUT_MS 10000

static _Atomic size_t virtual_bytes_total; /* held by every job now */

typedef enum { VJ_DATABASES, VJ_FANOUT, VJ_COMPARE, VJ_SCHEMA } vjob_kind;

struct vjob;

typedef struct vtask {
    struct vjob *job;
    int env;
    backend *b;
    vq_table *rows; /* the statement's result, all columns as text */
    long long cap;  /* rows kept */
    bool truncated;
    bool too_big; /* the job's results passed VIRTUAL_MAX_BYTES: failed when the fetch ends */
    bool too_many; /* all jobs together passed VIRTUAL_MAX_TOTAL: failed the same way */
    bool done, failed;
    unsigned long long affected; /* the statement returned no result set: its row count */
    unsigned err_code;
    char err[256];
    int step; /* 0 connect, 1 select db, 2 read only, 3 fetch */
} vtask;

typedef struct vjob {
    client *c; /* NULL once the client left */
    vjob_kind kind;
    vtask tasks[ROUTE_MAX_ENVS];
    int n, pending;
    bool answered;
    bool starting; /* job_start is still starting tasks: the last one to end does not free j */
    struct event *timer;
    char *sql;
    char db[ROUTE_NAME_MAX + 1];
    bool has_db;
    vq_query q; /* the query over the answer (databases, compare); kind VQ_SELECT */
    bool has_q;
    char key[ROUTE_NAME_MAX + 1];
    bool has_key;
    size_t bytes; /* of the values its tasks hold, bounded by VIRTUAL_MAX_BYTES */
} vjob;

static void job_answer(vjob *j);
static void task_step(vtask *t);
static vq_table *compare_build(client *c, struct vjob *j, char *err, size_t errlen);

/* ---- sending a result --------------------------------------------------------------------- */

static uint8_t pkt_type(vq_type t)
{
    switch (t) {
    case VQ_INT:
        return PKT_TYPE_LONGLONG;
    case VQ_DOUBLE:
        return PKT_TYPE_DOUBLE;
    case VQ_DATETIME:
        return PKT_TYPE_DATETIME;
    default:
        return PKT_TYPE_VAR_STRING;
    }
}

static void send_vq_result(client *c, const vq_result *r, uint16_t warnings)
{
    uint8_t *types = malloc(r->n_columns ? r->n_columns : 1);
    if (!types)
        abort();
    for (size_t i = 0; i < r->n_columns; i++) {
        types[i] = pkt_type(r->columns[i].type);
        /* In the binary protocol a column is sent as its type only if every value fits. */
        for (size_t row = 0; c->binary_rows && row < r->n_rows; row++) {
            const vq_value *v = vq_result_value(r, row, i);
            if (v && !v->is_null && !pkt_binary_value_fits(types[i], v->s, v->len))
                types[i] = PKT_TYPE_VAR_STRING;
        }
    }
    pbuf b;
    pbuf_init(&b);
    size_t start = pkt_begin(&b);
    pbuf_lenenc(&b, r->n_columns);
    pkt_end(&b, start, &c->seq);
    for (size_t i = 0; i < r->n_columns; i++) {
        uint8_t type = types[i];
        bool text = type == PKT_TYPE_VAR_STRING || type == PKT_TYPE_DATETIME;
        bool bytes = text && r->columns[i].binary; /* binary charset, BINARY_FLAG */
        pkt_build_column(&b, &c->seq, r->schema ? r->schema : "", r->table ? r->table : "",
                         r->columns[i].name, text && !bytes ? 45 : 63, text ? 1024 : 21, type,
                         text && !bytes ? 0 : 0x80, type == PKT_TYPE_DOUBLE ? 31 : 0,
                         c->ext_meta);
    }
    if (!(c->caps & CAP_DEPRECATE_EOF))
        pkt_build_eof(&b, &c->seq, 0, 0, ST_AUTOCOMMIT);
    const char **vals = calloc(r->n_columns ? r->n_columns : 1, sizeof(*vals));
    size_t *lens = calloc(r->n_columns ? r->n_columns : 1, sizeof(*lens));
    if (!vals || !lens)
        abort();
    for (size_t row = 0; row < r->n_rows; row++) {
        for (size_t col = 0; col < r->n_columns; col++) {
            const vq_value *v = vq_result_value(r, row, col);
            vals[col] = v && !v->is_null ? v->s : NULL;
            lens[col] = v && !v->is_null ? v->len : 0;
        }
        if (c->binary_rows)
            pkt_build_binary_row(&b, &c->seq, (int)r->n_columns, types, vals, lens);
        else
            pkt_build_text_row(&b, &c->seq, (int)r->n_columns, vals, lens);
        if (b.len > 1024 * 1024) {
            client_send(c, &b);
            pbuf_init(&b);
        }
    }
    free(vals);
    free(lens);
    free(types);
    pkt_build_eof(&b, &c->seq, c->caps, warnings, ST_AUTOCOMMIT);
    client_send(c, &b);
}

static void send_vq_error(client *c, int status, const char *err)
{
    client_send_err(c, (uint16_t)vq_error_code(status), vq_error_sqlstate(status), "%s", err);
}

/* ---- the tables ---------------------------------------------------------------------------- */

static const char *const envs_tables[] = {"databases", "environments", "session"};
static const char *const compare_tables[] = {"query", "schema"};

static bool is_virtual_schema(const char *s)
{
    return s && (strcasecmp(s, "__envs") == 0 || strcasecmp(s, "__compare") == 0);
}

bool virtual_is_schema(const char *name)
{
    return is_virtual_schema(name) || (name && strcasecmp(name, "__queries") == 0);
}

static void fmt_time(long long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static vq_table *table_environments(client *c)
{
    static const vq_column cols[] = {
        {"name", VQ_STRING},       {"description", VQ_STRING}, {"status", VQ_STRING},
        {"access", VQ_STRING},     {"server_version", VQ_STRING}, {"latency_ms", VQ_DOUBLE},
        {"pool_in_use", VQ_INT},   {"pool_idle", VQ_INT},       {"pool_max", VQ_INT},
        {"last_error", VQ_STRING}, {"checked_at", VQ_DATETIME},
        {"backend_writable", VQ_STRING}, {"backend_privileges", VQ_STRING},
    };
    proxy *p = c->p;
    vq_table *t = vq_table_new("__envs", "environments", cols, sizeof(cols) / sizeof(cols[0]));
    if (!t)
        abort();
    const config *cfg = c->cfg;
    for (int k = 0; k < cfg->n_envs; k++) {
        const cfg_env *e = &cfg->envs[k];
        int i = e->slot;
        grant_level g;
        if (!route_env_for(cfg, c->acct, e->name, &g))
            continue;
        health_view hv;
        health_get(&p->health[i], &hv);
        int in_use, idle, waiting;
        pool_stats(p->pools[i], &in_use, &idle, &waiting);
        size_t r = (size_t)vq_table_add_row(t);
        vq_set_str(t, r, 0, e->name);
        vq_set_str(t, r, 1, e->description ? e->description : "");
        vq_set_str(t, r, 2, hv.known ? (hv.up ? "up" : "down") : "unknown");
        vq_set_str(t, r, 3,
                   g == GRANT_WRITE && e->access == ACCESS_READ_WRITE ? "write" : "read");
        if (hv.version[0])
            vq_set_str(t, r, 4, hv.version);
        if (hv.known && hv.up)
            vq_set_double(t, r, 5, hv.latency_ms);
        vq_set_int(t, r, 6, in_use);
        vq_set_int(t, r, 7, idle);
        vq_set_int(t, r, 8, e->pool.max);
        if (hv.known && !hv.up)
            vq_set_str(t, r, 9, hv.last_error);
        if (hv.checked_at) {
            char ts[32];
            fmt_time(hv.checked_at, ts, sizeof(ts));
            vq_set_str(t, r, 10, ts);
        }
        vq_set_str(t, r, 11, health_writable_name(hv.writable));
        if (hv.writable != 0 && hv.privileges[0])
            vq_set_str(t, r, 12, hv.privileges);
    }
    return t;
}

static vq_table *table_session(client *c)
{
    static const vq_column cols[] = {
        {"user", VQ_STRING},     {"env", VQ_STRING},      {"database", VQ_STRING},
        {"connection_id", VQ_INT}, {"tls", VQ_STRING},    {"max_rows", VQ_INT},
        {"statement_timeout_ms", VQ_INT},
    };
    vq_table *t = vq_table_new("__envs", "session", cols, sizeof(cols) / sizeof(cols[0]));
    if (!t)
        abort();
    size_t r = (size_t)vq_table_add_row(t);
    vq_set_str(t, r, 0, c->user);
    if (c->env)
        vq_set_str(t, r, 1, c->env->name);
    if (c->has_db)
        vq_set_str(t, r, 2, c->db);
    vq_set_int(t, r, 3, c->id);
    vq_set_str(t, r, 4, c->tls ? "yes" : "no");
    if (c->env) {
        vq_set_int(t, r, 5, client_max_rows(c, c->env));
        vq_set_int(t, r, 6, client_statement_timeout(c, c->env));
    }
    return t;
}

/* Answers a parsed statement over table t (NULL: no such table in that schema). */
static void answer_table(client *c, vq_query *q, vq_table *t, const char *schema,
                         const char *name)
{
    char err[512];
    vq_result r;
    int st;
    if (!t) {
        st = vq_error_no_table(schema, name, err, sizeof(err));
        send_vq_error(c, st, err);
        return;
    }
    if (q->kind == VQ_DESCRIBE || q->kind == VQ_SHOW_COLUMNS)
        st = vq_describe(q, t, &r, err, sizeof(err));
    else
        st = vq_execute(q, t, &r, err, sizeof(err));
    if (st != VQ_OK) {
        send_vq_error(c, st, err);
        return;
    }
    send_vq_result(c, &r, 0);
    vq_result_free(&r);
}

/* ---- side tasks ---------------------------------------------------------------------------- */

static void job_free(vjob *j)
{
    atomic_fetch_sub(&virtual_bytes_total, j->bytes);
    for (int i = 0; i < j->n; i++)
        if (j->tasks[i].rows)
            vq_table_free(j->tasks[i].rows);
    if (j->has_q)
        vq_query_free(&j->q);
    if (j->timer)
        event_free(j->timer);
    free(j->sql);
    free(j);
}

/* A task ended (done or failed); the job answers when it was the last one. */
static void task_end(vtask *t)
{
    vjob *j = t->job;
    t->done = true;
    if (t->b) {
        backend_free(t->b);
        t->b = NULL;
    }
    if (--j->pending == 0 && !j->starting) {
        if (!j->answered)
            job_answer(j);
        job_free(j);
    }
}

static void task_fail(vtask *t, unsigned code, const char *msg)
{
    t->failed = true;
    t->err_code = code;
    snprintf(t->err, sizeof(t->err), "%.*s", (int)sizeof(t->err) - 1, msg);
    task_end(t);
}

static vq_type field_type(enum enum_field_types ft)
{
    switch (ft) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        return VQ_INT;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return VQ_DOUBLE;
    default:
        return VQ_STRING;
    }
}

/* A column of bytes rather than text: a string, BLOB, BIT or GEOMETRY column in the binary
 * character set. Fan-out and compare send it as binary too, so that clients keep the bytes
 * (as text, a driver would decode them in the connection's character set, or fail). Numbers,
 * dates and DECIMAL have the binary character set as well, but they are text. */
static bool field_is_bytes(const MYSQL_FIELD *f)
{
    if (f->charsetnr != 63)
        return false;
    switch (f->type) {
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_BIT:
    case MYSQL_TYPE_GEOMETRY:
        return true;
    default:
        return false;
    }
}

static bool task_row(backend *b, MYSQL_ROW row, unsigned long *lengths, void *arg)
{
    vtask *t = arg;
    if (!row) {
        unsigned n = mysql_field_count(b->mysql);
        MYSQL_FIELD *f = mysql_fetch_fields(b->ret_res);
        vq_column *cols = calloc(n ? n : 1, sizeof(*cols));
        if (!cols)
            abort();
        for (unsigned i = 0; i < n; i++) {
            cols[i].name = f[i].name;
            cols[i].type = field_type(f[i].type);
        }
        t->rows = vq_table_new("", "", cols, n);
        free(cols);
        for (unsigned i = 0; t->rows && i < n; i++)
            t->rows->binary[i] = field_is_bytes(&f[i]);
        return t->rows != NULL;
    }
    if (t->rows->n_rows >= (size_t)t->cap) {
        t->truncated = true;
        return false;
    }
    size_t size = 16 * t->rows->n_columns;
    for (size_t i = 0; i < t->rows->n_columns; i++)
        size += row[i] ? lengths[i] : 0;
    if (t->job->bytes + size > VIRTUAL_MAX_BYTES) {
        t->too_big = true;
        return false;
    }
    if (atomic_fetch_add(&virtual_bytes_total, size) + size > VIRTUAL_MAX_TOTAL) {
        atomic_fetch_sub(&virtual_bytes_total, size);
        t->too_many = true;
        return false;
    }
    t->job->bytes += size;
    size_t r = (size_t)vq_table_add_row(t->rows);
    for (size_t i = 0; i < t->rows->n_columns; i++)
        vq_set_strn(t->rows, r, i, row[i], row[i] ? lengths[i] : 0);
    return true;
}

static void task_done_cb(backend *b, int rc, void *arg)
{
    vtask *t = arg;
    if (rc) {
        task_fail(t, b->err_code, b->err_msg);
        return;
    }
    if (t->too_big || t->too_many) {
        char msg[200];
        if (t->too_big)
            snprintf(msg, sizeof(msg),
                     "envproxy: the results are larger than %zu MiB; fan-out and compare hold "
                     "them in memory: narrow the statement",
                     VIRTUAL_MAX_BYTES >> 20);
        else
            snprintf(msg, sizeof(msg),
                     "envproxy: fan-out and compare answers held at once for all sessions "
                     "reached %zu MiB; try again shortly, or narrow the statement",
                     VIRTUAL_MAX_TOTAL >> 20);
        task_fail(t, t->too_big ? 1104 : 1041, msg);
        return;
    }
    if (t->step == 3 && !t->rows)
        t->affected = mysql_affected_rows(b->mysql); /* OK without a result set */
    t->step++;
    task_step(t);
}

static void task_step(vtask *t)
{
    vjob *j = t->job;
    if (j->answered) {
        task_end(t);
        return;
    }
    switch (t->step) {
    case 1:
        if (j->has_db) {
            backend_select_db(t->b, j->db, task_done_cb, t);
            return;
        }
        t->step++;
        /* fall through */
    case 2:
        backend_query(t->b, "SET SESSION TRANSACTION READ ONLY", task_done_cb, t);
        return;
    case 3: {
        /* Checked again with how this backend session reads SQL (its sql_mode): one
         * statement, since the connection runs no more than one per packet. */
        policy_verdict v;
        bool ok = backend_policy_check(t->b, j->sql, strlen(j->sql), true, &v);
        if (ok && v.n_statements != 1) {
            snprintf(v.what, sizeof(v.what), "%s",
                     v.n_statements ? "more than one statement" : "an empty statement");
            ok = false;
        }
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof(msg), "envproxy: read-only statements only: %s is not allowed",
                     v.what);
            task_fail(t, 1290, msg);
            return;
        }
        backend_fetch(t->b, j->sql, task_row, task_done_cb, t);
        return;
    }
    default:
        task_end(t);
        return;
    }
}

static void job_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    vjob *j = arg;
    for (int i = 0; i < j->n; i++) {
        vtask *t = &j->tasks[i];
        if (!t->done && !t->failed) {
            t->failed = true;
            t->err_code = 3024;
            snprintf(t->err, sizeof(t->err), "no answer within %d ms", VIRTUAL_TIMEOUT_MS);
        }
    }
    job_answer(j);
    /* The tasks still waiting are stopped: a statement that never answers must not hold a
     * backend connection (and the job) for ever, nor let a client that repeats it open more
     * and more of them. The statement is killed on the server, the connection shut down;
     * each task then fails through its own callback (task_end), the last one frees j. */
    for (int i = 0; i < j->n; i++) {
        vtask *t = &j->tasks[i];
        if (t->done || !t->b)
            continue;
        if (t->step >= 3 && t->b->thread_id && !atomic_load(&t->b->pool->proxy->stopping))
            backend_kill_query(t->b->pool, t->b->base, t->b->thread_id, NULL, NULL);
        if (t->b->mysql)
            mariadb_cancel(t->b->mysql);
    }
}

/* Starts one task per environment of envs (indexes), with sql. The job answers later. */
static void job_start(client *c, vjob *j, const int *envs, int n, const char *sql)
{
    j->c = c;
    j->sql = strdup(sql);
    if (!j->sql)
        abort();
    j->n = n;
    j->pending = n;
    c->vjob = j;
    c->state = CL_PREPARE;
    if (n == 0) {
        /* No environment to ask (an account without grants, say): the answer is empty. */
        job_answer(j);
        job_free(j);
        return;
    }
    j->timer = evtimer_new(c->w->base, job_timeout_cb, j);
    struct timeval tv = {VIRTUAL_TIMEOUT_MS / 1000, (VIRTUAL_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(j->timer, &tv);
    for (int i = 0; i < n; i++) {
        vtask *t = &j->tasks[i];
        t->job = j;
        t->env = envs[i];
        const cfg_env *e = proxy_slot_env(c->p, envs[i]);
        long long cap = client_max_rows(c, e);
        t->cap = cap > 0 && cap < VIRTUAL_MAX_ROWS ? cap : VIRTUAL_MAX_ROWS;
        if (j->kind == VJ_COMPARE || j->kind == VJ_SCHEMA || j->kind == VJ_DATABASES)
            t->cap = VIRTUAL_MAX_ROWS;
    }
    /* A task may end while it starts (an environment down, a connect that fails at once):
     * the job stays until every task has started, then answers if they all ended. */
    j->starting = true;
    for (int i = 0; i < n; i++) {
        vtask *t = &j->tasks[i];
        if (!health_allow(&c->p->health[t->env])) {
            health_view hv;
            health_get(&c->p->health[t->env], &hv);
            char msg[300];
            snprintf(msg, sizeof(msg), "environment is down: %s", hv.last_error);
            task_fail(t, 2003, msg);
            continue;
        }
        t->b = backend_new(c->p->pools[t->env]);
        t->b->no_db = true;
        t->b->single_stmt = true; /* one statement, checked in this connection's sql_mode */
        t->step = 0; /* task_done_cb moves it to 1 once connected */
        backend_connect(t->b, c->w->base, task_done_cb, t);
    }
    j->starting = false;
    if (j->pending == 0) {
        job_answer(j);
        job_free(j);
    }
}

/* The first task of a fan-out whose rows were cut to its cap, or NULL. */
static vtask *fanout_cut(vjob *j)
{
    for (int i = 0; i < j->n; i++)
        if (!j->tasks[i].failed && j->tasks[i].rows && j->tasks[i].truncated)
            return &j->tasks[i];
    return NULL;
}

/* The job's answer: send it (when the client is still there) and mark it answered. */
static void job_answer(vjob *j)
{
    if (j->answered)
        return;
    j->answered = true;
    if (j->timer)
        evtimer_del(j->timer);
    client *c = j->c;
    if (!c)
        return;
    c->vjob = NULL;
    vq_table *out = NULL;
    char err[512];

    if (j->kind == VJ_DATABASES) {
        static const vq_column cols[] = {{"env", VQ_STRING}, {"database", VQ_STRING}};
        out = vq_table_new("__envs", "databases", cols, 2);
        for (int i = 0; i < j->n; i++) {
            vtask *t = &j->tasks[i];
            const char *env = proxy_slot_env(c->p, t->env)->name;
            if (t->failed || !t->rows) {
                size_t r = (size_t)vq_table_add_row(out);
                vq_set_str(out, r, 0, env); /* database NULL: the environment did not answer */
                continue;
            }
            for (size_t k = 0; k < t->rows->n_rows; k++) {
                size_t r = (size_t)vq_table_add_row(out);
                vq_set_str(out, r, 0, env);
                vq_set_str(out, r, 1, vq_table_value(t->rows, k, 0)->s);
            }
        }
        answer_table(c, &j->q, out, "__envs", "databases");
    } else if (j->kind == VJ_FANOUT && fanout_cut(j) && client_cap_fails(c)) {
        /* A dump or export cut short would look whole: fail it, as relay.c does. */
        vtask *t = fanout_cut(j);
        client_send_err(c, 1104, "HY000",
                        "envproxy: the result has more than %lld rows in environment '%s' "
                        "(limits.max_rows, or the %d rows a fan-out holds): a dump or export "
                        "of it would be incomplete; see \"Backups\" in the README",
                        t->cap, proxy_slot_env(c->p, t->env)->name, VIRTUAL_MAX_ROWS);
    } else if (j->kind == VJ_FANOUT) {
        /* Columns: _env, _error, then the first answering environment's. */
        vtask *ref = NULL;
        for (int i = 0; i < j->n && !ref; i++)
            if (!j->tasks[i].failed && j->tasks[i].rows)
                ref = &j->tasks[i];
        size_t nc = ref ? ref->rows->n_columns : 0;
        vq_column *cols = calloc(nc + 2, sizeof(*cols));
        if (!cols)
            abort();
        cols[0] = (vq_column){"_env", VQ_STRING};
        cols[1] = (vq_column){"_error", VQ_STRING};
        for (size_t k = 0; k < nc; k++)
            cols[k + 2] = ref->rows->columns[k];
        out = vq_table_new("", "", cols, nc + 2);
        free(cols);
        for (size_t k = 0; out && k < nc; k++)
            out->binary[k + 2] = ref->rows->binary[k];
        uint16_t warnings = 0;
        for (int i = 0; i < j->n; i++) {
            vtask *t = &j->tasks[i];
            const char *env = proxy_slot_env(c->p, t->env)->name;
            bool same = t->rows && t->rows->n_columns == nc;
            for (size_t k = 0; same && k < nc; k++)
                same = strcmp(t->rows->columns[k].name, ref->rows->columns[k].name) == 0;
            if (t->failed || !t->rows || !same) {
                size_t r = (size_t)vq_table_add_row(out);
                vq_set_str(out, r, 0, env);
                char msg[300];
                if (t->failed)
                    snprintf(msg, sizeof(msg), "ERROR %u: %s", t->err_code, t->err);
                else if (!t->rows)
                    snprintf(msg, sizeof(msg), "OK: no result set, %llu rows affected",
                             t->affected);
                else
                    snprintf(msg, sizeof(msg), "its columns differ from %s's",
                             proxy_slot_env(c->p, ref->env)->name);
                vq_set_str(out, r, 1, msg);
                continue;
            }
            if (t->truncated) {
                /* SHOW WARNINGS right after says so (client.c), as for a result of one
                 * environment cut to max_rows. */
                warnings++;
                if (t->cap > c->truncated_to)
                    c->truncated_to = t->cap;
            }
            for (size_t k = 0; k < t->rows->n_rows; k++) {
                size_t r = (size_t)vq_table_add_row(out);
                vq_set_str(out, r, 0, env);
                for (size_t m = 0; m < nc; m++) {
                    const vq_value *v = vq_table_value(t->rows, k, m);
                    if (!v->is_null)
                        vq_set_strn(out, r, m + 2, v->s, v->len);
                }
            }
        }
        vq_result r;
        vq_query all;
        if (vq_parse("SELECT * FROM x", 15, &all, err, sizeof(err)) == VQ_OK &&
            vq_execute(&all, out, &r, err, sizeof(err)) == VQ_OK) {
            send_vq_result(c, &r, warnings);
            vq_result_free(&r);
        } else {
            client_send_err(c, 1105, "HY000", "envproxy: %s", err);
        }
        vq_query_free(&all);
    } else {
        out = compare_build(c, j, err, sizeof(err));
        if (out)
            answer_table(c, &j->q, out, "__compare", j->kind == VJ_SCHEMA ? "schema" : "query");
        else
            client_send_err(c, 1105, "HY000", "envproxy: %s", err);
    }
    if (out)
        vq_table_free(out);
    client_command_done(c);
}

void virtual_client_gone(client *c)
{
    if (c->vjob) {
        c->vjob->c = NULL;
        c->vjob = NULL;
    }
}

/* ---- compare --------------------------------------------------------------------------------- */

static vq_table *compare_build(client *c, vjob *j, char *err, size_t errlen)
{
    for (int i = 0; i < 2; i++) {
        vtask *t = &j->tasks[i];
        const char *env = proxy_slot_env(c->p, t->env)->name;
        if (t->failed || !t->rows) {
            snprintf(err, errlen, "environment '%s': %s%s", env,
                     t->failed ? "" : "the statement returned no result set",
                     t->failed ? t->err : "");
            return NULL;
        }
        if (t->truncated) {
            snprintf(err, errlen,
                     "environment '%s' returned more than %d rows; compare holds at most that "
                     "many rows per environment in memory: narrow the statement",
                     env, VIRTUAL_MAX_ROWS);
            return NULL;
        }
    }
    if (j->kind == VJ_SCHEMA)
        return compare_schema(j->tasks[0].rows, j->tasks[1].rows, j->db, err, errlen);
    return compare_rows(j->tasks[0].rows, j->tasks[1].rows,
                        proxy_slot_env(c->p, j->tasks[0].env)->name,
                        proxy_slot_env(c->p, j->tasks[1].env)->name, j->has_key ? j->key : NULL, err,
                        errlen);
}

/* ---- entry points ------------------------------------------------------------------------------ */

/* Environment indexes from "dev,prod" (exactly want names when want > 0), each readable by
 * the account; on error sends it and returns -1. */
static int parse_envs(client *c, const char *list, int want, int *out)
{
    char buf[ROUTE_MAX_ENVS * (ROUTE_NAME_MAX + 1)];
    snprintf(buf, sizeof(buf), "%s", list);
    int n = 0;
    char *save = NULL;
    for (char *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        while (*name == ' ')
            name++;
        char *end = name + strlen(name);
        while (end > name && end[-1] == ' ')
            *--end = '\0';
        const cfg_env *e = route_env_for(c->cfg, c->acct, name, NULL);
        if (!e) {
            client_send_err(c, 1044, "42000",
                            "Access denied for user '%s'@'%s' to environment '%s'", c->user,
                            c->host, name);
            return -1;
        }
        if (n == ROUTE_MAX_ENVS)
            break;
        out[n++] = env_index(c->p, e);
    }
    if (want && n != want) {
        client_send_err(c, 1210, "HY000", "envproxy: envs takes %d environments, as 'dev,prod'",
                        want);
        return -1;
    }
    return n;
}

/* Fan-out and compare run read-only statements only. */
static bool read_only_ok(client *c, const char *sql, size_t len, const char *what)
{
    policy_verdict v;
    if (sqlpolicy_check_readonly(sql, len, NULL, &v)) { /* again per connection, in its mode */
        if (v.n_statements == 1)
            return true;
        /* One statement per environment: its result is the environment's answer, and the
         * side connections never run several statements in one packet. */
        client_send_err(c, 1064, "42000", "envproxy: %s runs exactly one statement, not %d",
                        what, v.n_statements);
        return false;
    }
    client_send_err(c, 1290, "HY000", "envproxy: %s runs read-only statements only: %s is not "
                                      "allowed",
                    what, v.what);
    return false;
}

static vjob *job_new(vjob_kind kind)
{
    vjob *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->kind = kind;
    return j;
}

static void start_fanout(client *c, const route_hint *h, const char *sql, size_t len)
{
    int envs[ROUTE_MAX_ENVS], n = 0;
    if (h->all_envs) {
        const config *cfg = c->cfg;
        for (int i = 0; i < cfg->n_envs && n < ROUTE_MAX_ENVS; i++)
            if (route_env_for(cfg, c->acct, cfg->envs[i].name, NULL))
                envs[n++] = cfg->envs[i].slot;
    } else {
        for (int i = 0; i < h->n_envs; i++) {
            const cfg_env *e = route_env_for(c->cfg, c->acct, h->envs[i], NULL);
            if (!e) {
                client_send_err(c, 1044, "42000",
                                "Access denied for user '%s'@'%s' to environment '%s'",
                                c->user, c->host, h->envs[i]);
                client_command_done(c);
                return;
            }
            envs[n++] = env_index(c->p, e);
        }
    }
    if (!read_only_ok(c, sql, len, "fan-out")) {
        client_command_done(c);
        return;
    }
    vjob *j = job_new(VJ_FANOUT);
    const char *db = h->has_db ? h->db : c->has_db && !is_virtual_schema(c->db) ? c->db : NULL;
    if (db) {
        snprintf(j->db, sizeof(j->db), "%s", db);
        j->has_db = true;
    }
    char *text = strndup(sql, len);
    if (!text)
        abort();
    job_start(c, j, envs, n, text);
    free(text);
}

/* Starts a compare of sql between two environments; q is the query over the answer (owned
 * by the job from here). */
static void start_compare(client *c, vq_query *q, const char *envs_list, const char *sql,
                          const char *key, const char *db, bool schema)
{
    int envs[ROUTE_MAX_ENVS];
    if (parse_envs(c, envs_list, 2, envs) < 0) {
        vq_query_free(q);
        client_command_done(c);
        return;
    }
    vjob *j = job_new(schema ? VJ_SCHEMA : VJ_COMPARE);
    j->q = *q;
    j->has_q = true;
    char stmt[4096];
    if (schema) {
        const char *d = db ? db : c->has_db && !is_virtual_schema(c->db) ? c->db : NULL;
        bool ok = d && *d && strlen(d) <= ROUTE_NAME_MAX;
        for (const char *p = d; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '_' || *p == '$' || *p == '-';
        if (!ok) {
            client_send_err(c, 1210, "HY000",
                            "envproxy: __compare.schema takes envs and db (a plain database "
                            "name); no database was given or selected");
            job_free(j);
            client_command_done(c);
            return;
        }
        snprintf(j->db, sizeof(j->db), "%s", d);
        compare_schema_sql(d, stmt, sizeof(stmt));
        sql = stmt;
    } else {
        if (!read_only_ok(c, sql, strlen(sql), "compare")) {
            job_free(j);
            client_command_done(c);
            return;
        }
        if (c->has_db && !is_virtual_schema(c->db)) {
            snprintf(j->db, sizeof(j->db), "%s", c->db);
            j->has_db = true;
        }
        if (key) {
            snprintf(j->key, sizeof(j->key), "%s", key);
            j->has_key = true;
        }
    }
    job_start(c, j, envs, 2, sql);
}

static bool first_word_is(const char *sql, size_t len, const char *const *words, int n)
{
    sql_lexer lx;
    sql_mode_flags mode = {0};
    sqllex_init(&lx, sql, len, &mode);
    sql_token t = sqllex_next(&lx);
    if (t.kind != SQLTOK_WORD)
        return false;
    for (int i = 0; i < n; i++)
        if (strlen(words[i]) == t.len && strncasecmp(sql + t.start, words[i], t.len) == 0)
            return true;
    return false;
}

/* A statement over __envs or __compare. Returns false when it is not one after all. */
/* The statements the proxy runs elsewhere (fan-out, compare) are C strings: a NUL byte
 * would silently cut them. Answers the error and returns true when text holds one. */
static bool refuse_nul(client *c, const char *text, size_t len)
{
    if (!memchr(text, '\0', len))
        return false;
    client_send_err(c, 1064, "42000",
                    "envproxy: a NUL byte in a statement for envproxy's virtual tables, fan-out "
                    "or compare is not accepted");
    client_command_done(c);
    return true;
}

static bool virtual_select(client *c, const char *sql, size_t len)
{
    vq_query q;
    char err[512];
    if (refuse_nul(c, sql, len))
        return true;
    int st = vq_parse(sql, len, &q, err, sizeof(err));
    if (st != VQ_OK) {
        send_vq_error(c, st, err);
        client_command_done(c);
        return true;
    }
    const char *schema = q.schema ? q.schema : c->has_db ? c->db : NULL;
    if (q.kind == VQ_SHOW_DATABASES || !is_virtual_schema(schema)) {
        vq_query_free(&q);
        return false;
    }
    bool envs = strcasecmp(schema, "__envs") == 0;
    const char *canon = envs ? "__envs" : "__compare";
    if (q.kind == VQ_SHOW_TABLES) {
        vq_result r;
        st = envs ? vq_show_tables(&q, canon, envs_tables, 3, &r, err, sizeof(err))
                  : vq_show_tables(&q, canon, compare_tables, 2, &r, err, sizeof(err));
        if (st == VQ_OK) {
            send_vq_result(c, &r, 0);
            vq_result_free(&r);
        } else {
            send_vq_error(c, st, err);
        }
        vq_query_free(&q);
        client_command_done(c);
        return true;
    }
    const char *table = q.table ? q.table : "";
    bool describe = q.kind == VQ_DESCRIBE || q.kind == VQ_SHOW_COLUMNS;
    vq_table *t = NULL;
    if (envs && strcasecmp(table, "environments") == 0) {
        t = table_environments(c);
    } else if (envs && strcasecmp(table, "session") == 0) {
        t = table_session(c);
    } else if (envs && strcasecmp(table, "databases") == 0) {
        if (!describe) {
            int all[ROUTE_MAX_ENVS], n = 0;
            const config *cfg = c->cfg;
            for (int i = 0; i < cfg->n_envs && n < ROUTE_MAX_ENVS; i++)
                if (route_env_for(cfg, c->acct, cfg->envs[i].name, NULL))
                    all[n++] = cfg->envs[i].slot;
            vjob *j = job_new(VJ_DATABASES);
            j->q = q;
            j->has_q = true;
            job_start(c, j, all, n, "SHOW DATABASES");
            return true;
        }
        static const vq_column cols[] = {{"env", VQ_STRING}, {"database", VQ_STRING}};
        t = vq_table_new("__envs", "databases", cols, 2);
    } else if (!envs && strcasecmp(table, "query") == 0) {
        if (!describe) {
            static const char *const names[] = {"envs", "sql", "key?"};
            const char *vals[3];
            st = vq_where_params(&q, names, 3, vals, err, sizeof(err));
            if (st != VQ_OK) {
                send_vq_error(c, st, err);
                vq_query_free(&q);
                client_command_done(c);
                return true;
            }
            start_compare(c, &q, vals[0], vals[1], vals[2], NULL, false);
            return true;
        }
        static const vq_column cols[] = {{"_diff", VQ_STRING}, {"_env", VQ_STRING}};
        t = vq_table_new("__compare", "query", cols, 2);
    } else if (!envs && strcasecmp(table, "schema") == 0) {
        if (!describe) {
            static const char *const names[] = {"envs", "db?"};
            const char *vals[2];
            st = vq_where_params(&q, names, 2, vals, err, sizeof(err));
            if (st != VQ_OK) {
                send_vq_error(c, st, err);
                vq_query_free(&q);
                client_command_done(c);
                return true;
            }
            start_compare(c, &q, vals[0], NULL, NULL, vals[1], true);
            return true;
        }
        static const vq_column cols[] = {
            {"database", VQ_STRING},    {"table_name", VQ_STRING}, {"object_type", VQ_STRING},
            {"object_name", VQ_STRING}, {"_diff", VQ_STRING},      {"left_definition", VQ_STRING},
            {"right_definition", VQ_STRING},
        };
        t = vq_table_new("__compare", "schema", cols, 7);
    }
    answer_table(c, &q, t, canon, table);
    if (t)
        vq_table_free(t);
    vq_query_free(&q);
    client_command_done(c);
    return true;
}

/* Whether a statement (without its routing hint) may be over a virtual table: it names
 * __envs or __compare, or it reads in a session whose database is one of them. USE is the
 * router's. */
enum { VC_NO, VC_MENTIONS, VC_IN_DB };
static int virtual_candidate(client *c, const char *stmt, size_t stmt_len)
{
    static const char *const use[] = {"USE"};
    if (first_word_is(stmt, stmt_len, use, 1))
        return VC_NO;
    if (vq_mentions_virtual(stmt, stmt_len))
        return VC_MENTIONS;
    static const char *const readers[] = {"SELECT", "SHOW", "DESC", "DESCRIBE", "EXPLAIN"};
    if (c->has_db && is_virtual_schema(c->db) && first_word_is(stmt, stmt_len, readers, 5))
        return VC_IN_DB;
    return VC_NO;
}

bool virtual_statement(client *c, const route_hint *h, const char *sql, size_t len)
{
    const char *stmt = sql + (h->present ? h->end : 0);
    size_t stmt_len = len - (h->present ? h->end : 0);
    if (h->present && (h->all_envs || h->n_envs > 1 || h->n_compare == 2) &&
        refuse_nul(c, stmt, stmt_len))
        return true;
    if (h->present && (h->all_envs || h->n_envs > 1)) {
        start_fanout(c, h, stmt, stmt_len);
        return true;
    }
    if (h->present && h->n_compare == 2) {
        vq_query q;
        char err[256];
        if (vq_parse("SELECT * FROM query", 19, &q, err, sizeof(err)) != VQ_OK) {
            client_send_err(c, 1105, "HY000", "envproxy: %s", err);
            client_command_done(c);
            return true;
        }
        char envs[2 * ROUTE_NAME_MAX + 2];
        snprintf(envs, sizeof(envs), "%s,%s", h->compare[0], h->compare[1]);
        char *text = strndup(stmt, stmt_len);
        if (!text)
            abort();
        start_compare(c, &q, envs, text, h->has_key ? h->key : NULL, NULL, false);
        free(text);
        return true;
    }
    int cand = virtual_candidate(c, stmt, stmt_len);
    if (cand == VC_NO)
        return false;
    if (cand == VC_IN_DB) {
        /* In USE __envs, a statement that is not over a virtual table goes to the backend. */
        vq_query q;
        if (vq_parse(stmt, stmt_len, &q, NULL, 0) != VQ_OK)
            return false;
        vq_query_free(&q);
    }
    return virtual_select(c, stmt, stmt_len);
}

bool virtual_takes(client *c, const route_hint *h, const char *sql, size_t len)
{
    const char *stmt = sql + (h->present ? h->end : 0);
    size_t stmt_len = len - (h->present ? h->end : 0);
    if (h->present && (h->all_envs || h->n_envs > 1 || h->n_compare == 2))
        return true;
    int cand = virtual_candidate(c, stmt, stmt_len);
    if (cand == VC_NO)
        return false;
    bool mentions = cand == VC_MENTIONS;
    /* As virtual_statement() and virtual_select() decide. */
    vq_query q;
    if (vq_parse(stmt, stmt_len, &q, NULL, 0) != VQ_OK)
        return mentions; /* the parse error is answered when the text names a virtual table */
    const char *schema = q.schema ? q.schema : c->has_db ? c->db : NULL;
    bool yes = q.kind != VQ_SHOW_DATABASES && is_virtual_schema(schema);
    vq_query_free(&q);
    return yes;
}

/* SHOW DATABASES / SHOW SCHEMAS [LIKE 'pat']: true when the statement is one, with the
 * pattern (or NULL) in *like (caller frees). */
bool virtual_is_show_databases(const char *sql, size_t len, char **like)
{
    static const char *const show[] = {"SHOW"};
    if (!first_word_is(sql, len, show, 1))
        return false;
    vq_query q;
    if (vq_parse(sql, len, &q, NULL, 0) != VQ_OK)
        return false;
    bool yes = q.kind == VQ_SHOW_DATABASES;
    *like = yes && q.like ? strdup(q.like) : NULL;
    vq_query_free(&q);
    return yes;
}
