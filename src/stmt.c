/* stmt.c: server-side prepared statements (COM_STMT_*).
 *
 * Statement ids are the proxy's own. Each stands for a statement prepared on one backend
 * connection; when it next runs on another connection (the session's connection for that
 * environment was replaced), it is prepared there again first, silently, and EXECUTE
 * packets that rely on parameter types sent earlier get those types inserted. The policy
 * check and the choice of environment happen at PREPARE. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define CURSOR_TYPE_MASK 0x0F /* the flags byte of COM_STMT_EXECUTE, low bits: cursor type */

static cl_stmt *stmt_find(client *c, uint32_t id)
{
    for (cl_stmt *st = c->stmts; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

static void stmt_free(cl_stmt *st)
{
    free(st->sql);
    free(st->param_types);
    pbuf_free(&st->columns);
    free(st);
}

static void stmt_unlink(client *c, cl_stmt *st)
{
    for (cl_stmt **pp = &c->stmts; *pp; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            return;
        }
    }
}

void stmt_free_all(client *c)
{
    while (c->stmts) {
        cl_stmt *st = c->stmts;
        c->stmts = st->next;
        stmt_free(st);
    }
    c->stmt = NULL;
}

static void handle_prepare(client *c)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    route_hint h;
    char err[256];
    if (route_parse_hint(sql, len, &h, err, sizeof(err))) {
        client_send_err(c, 1064, "42000", "envproxy: %s", err);
        client_command_done(c);
        return;
    }
    if (h.present && (h.all_envs || h.n_envs > 1 || h.n_compare)) {
        client_send_err(c, 1235, "42000",
                        "envproxy: a prepared statement runs in one environment; env=a,b, "
                        "env=* and compare= are for plain statements");
        client_command_done(c);
        return;
    }
    if (!client_resolve(c, &h))
        return;
    cl_stmt *st = calloc(1, sizeof(*st));
    if (!st)
        abort();
    st->id = ++c->next_stmt_id;
    st->env = env_index(c->p, c->route.env);
    st->has_db = c->job_has_db;
    if (st->has_db)
        snprintf(st->db, sizeof(st->db), "%s", c->job_db);
    st->read_only = c->route.read_only;
    st->sql = malloc(len ? len : 1);
    if (!st->sql)
        abort();
    memcpy(st->sql, sql, len);
    st->sql_len = len;
    pbuf_init(&st->columns);
    sql_mode_flags probe = {0};
    sqlpolicy_track_sql_mode(sql, len, &probe);
    sql_mode_flags none = {0};
    st->changes_mode = memcmp(&probe, &none, sizeof(probe)) != 0;
    c->stmt = st; /* registered when the backend says OK */
    c->job = JOB_PREPARE;
    client_start_job(c);
}

/* Puts c->route back to where the statement was prepared. Returns false (error sent) when
 * the account lost its grant meanwhile. */
static bool route_for_stmt(client *c, cl_stmt *st)
{
    const cfg_env *e = proxy_slot_env(c->p, st->env);
    grant_level g;
    if (!route_env_for(c->p->cfg, c->acct, e->name, &g)) {
        client_send_err(c, 1044, "42000", "Access denied for user '%s'@'%s' to environment '%s'",
                        c->user, c->host, e->name);
        client_command_done(c);
        return false;
    }
    memset(&c->route, 0, sizeof(c->route));
    c->route.env = e;
    c->route.grant = g;
    c->route.read_only = st->read_only || e->access != ACCESS_READ_WRITE || g != GRANT_WRITE;
    c->job_has_db = st->has_db;
    if (st->has_db)
        snprintf(c->job_db, sizeof(c->job_db), "%s", st->db);
    c->job_moves_session = false;
    return true;
}

void stmt_command(client *c, uint8_t cmd)
{
    if (cmd == CMD_STMT_PREPARE) {
        handle_prepare(c);
        return;
    }
    if (c->cmd.len < 5) {
        if (cmd == CMD_STMT_CLOSE || cmd == CMD_STMT_SEND_LONG_DATA) {
            client_command_done(c); /* no reply, as the protocol says */
            return;
        }
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        client_command_done(c);
        return;
    }
    uint32_t id = pkt_u32(c->cmd.data + 1);
    cl_stmt *st = stmt_find(c, id);
    if (cmd == CMD_STMT_CLOSE) {
        if (st) {
            backend *b = client_held(c, st->env);
            if (b && b->serial == st->be_serial && b->op == BOP_NONE) {
                /* No reply comes for COM_STMT_CLOSE: just send it. */
                uint8_t pkt[9] = {5, 0, 0, 0, CMD_STMT_CLOSE};
                pkt[5] = (uint8_t)st->backend_id;
                pkt[6] = (uint8_t)(st->backend_id >> 8);
                pkt[7] = (uint8_t)(st->backend_id >> 16);
                pkt[8] = (uint8_t)(st->backend_id >> 24);
                evbuffer_add(b->out, pkt, sizeof(pkt));
                if (backend_flush(b) < 0)
                    client_drop_backend(c, b);
            }
            stmt_unlink(c, st);
            if (c->stmt == st)
                c->stmt = NULL;
            stmt_free(st);
        }
        client_command_done(c);
        return;
    }
    if (!st) {
        if (cmd == CMD_STMT_SEND_LONG_DATA) {
            client_command_done(c);
            return;
        }
        client_send_err(c, 1243, "HY000",
                        "Unknown prepared statement handler (%u) given to envproxy", id);
        client_command_done(c);
        return;
    }
    if (cmd == CMD_STMT_FETCH) {
        client_send_err(c, 1235, "42000",
                        "envproxy: cursors (COM_STMT_FETCH) are not supported; rows come with "
                        "the result of COM_STMT_EXECUTE");
        client_command_done(c);
        return;
    }
    if (cmd == CMD_STMT_RESET && !client_held(c, st->env)) {
        /* Nothing was sent for it anywhere yet: already reset. */
        pbuf b;
        pbuf_init(&b);
        pkt_build_ok(&b, &c->seq, 0, 0, ST_AUTOCOMMIT, 0, NULL, 0);
        client_send(c, &b);
        client_command_done(c);
        return;
    }
    if (!route_for_stmt(c, st))
        return;
    c->stmt = st;
    c->job = JOB_STMT;
    client_start_job(c);
}

/* COM_STMT_PREPARE of st's text on c->be, for the proxy itself. */
static void reprepare(client *c, cl_stmt *st)
{
    pbuf p;
    pbuf_init(&p);
    pbuf_u8(&p, CMD_STMT_PREPARE);
    pbuf_put(&p, st->sql, st->sql_len);
    c->stmt_reprepare = true;
    c->rl_silent = true;
    relay_send(c, RL_PREP_OK, p.data, p.len);
    pbuf_free(&p);
}

/* The client's EXECUTE / RESET / SEND_LONG_DATA packet for the backend: its statement id,
 * no cursor, and the parameter types when this connection has not seen them yet. Returns
 * -1 (error sent) when the packet is malformed. */
static int build_stmt_packet(client *c, cl_stmt *st, pbuf *out)
{
    const uint8_t *p = c->cmd.data;
    size_t len = c->cmd.len;
    uint8_t cmd = p[0];
    pbuf_put(out, p, len);
    out->data[1] = (uint8_t)st->backend_id;
    out->data[2] = (uint8_t)(st->backend_id >> 8);
    out->data[3] = (uint8_t)(st->backend_id >> 16);
    out->data[4] = (uint8_t)(st->backend_id >> 24);
    if (cmd != CMD_STMT_EXECUTE)
        return 0;
    if (len < 10) {
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        return -1;
    }
    out->data[5] &= (uint8_t)~CURSOR_TYPE_MASK; /* no cursors: rows come with the result */
    if (st->n_params == 0)
        return 0;
    size_t nb = ((size_t)st->n_params + 7) / 8;
    size_t bound_at = 10 + nb;
    if (len < bound_at + 1) {
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        return -1;
    }
    if (p[bound_at] == 1) {
        if (len < bound_at + 1 + 2 * (size_t)st->n_params) {
            client_send_err(c, 1835, "HY000", "Malformed communication packet");
            return -1;
        }
        free(st->param_types);
        st->param_types = malloc(2 * (size_t)st->n_params);
        if (!st->param_types)
            abort();
        memcpy(st->param_types, p + bound_at + 1, 2 * (size_t)st->n_params);
        st->types_serial = c->be->serial;
        return 0;
    }
    if (st->types_serial == c->be->serial)
        return 0;
    if (!st->param_types) {
        client_send_err(c, 1210, "HY000",
                        "Incorrect arguments to mysqld_stmt_execute: no parameter types were "
                        "ever sent for statement %u",
                        st->id);
        return -1;
    }
    /* Insert the remembered types after new_params_bound_flag, now 1. */
    out->len = 0;
    pbuf_put(out, p, bound_at);
    out->data[1] = (uint8_t)st->backend_id;
    out->data[2] = (uint8_t)(st->backend_id >> 8);
    out->data[3] = (uint8_t)(st->backend_id >> 16);
    out->data[4] = (uint8_t)(st->backend_id >> 24);
    out->data[5] &= (uint8_t)~CURSOR_TYPE_MASK;
    pbuf_u8(out, 1);
    pbuf_put(out, st->param_types, 2 * (size_t)st->n_params);
    pbuf_put(out, p + bound_at + 1, len - bound_at - 1);
    st->types_serial = c->be->serial;
    return 0;
}

/* Sends the client's statement command to the backend where st is prepared. */
static void send_stmt_command(client *c, cl_stmt *st)
{
    pbuf out;
    pbuf_init(&out);
    if (build_stmt_packet(c, st, &out)) {
        pbuf_free(&out);
        client_command_done(c);
        return;
    }
    uint8_t cmd = c->cmd.data[0];
    if (cmd == CMD_STMT_SEND_LONG_DATA) {
        /* No reply: write it and go on. */
        size_t n = out.len;
        uint8_t h[PKT_HEADER] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), 0};
        evbuffer_add(c->be->out, h, PKT_HEADER);
        evbuffer_add(c->be->out, out.data, out.len);
        pbuf_free(&out);
        if (backend_flush(c->be) < 0)
            client_drop_backend(c, c->be);
        client_command_done(c);
        return;
    }
    relay_send(c, RL_FIRST, out.data, out.len);
    pbuf_free(&out);
}

void stmt_run(client *c)
{
    backend *b = c->be;
    cl_stmt *st = c->stmt;
    if (c->job == JOB_PREPARE) {
        if (!client_check_policy(c, b, st->sql, st->sql_len)) {
            stmt_free(st);
            c->stmt = NULL;
            return;
        }
        c->rl_silent = false;
        c->stmt_reprepare = false;
        relay_start(c, RL_PREP_OK);
        return;
    }
    if (st->be_serial != b->serial) {
        reprepare(c, st);
        return;
    }
    send_stmt_command(c, st);
}

void stmt_prepared(client *c, bool ok, uint32_t backend_id, uint16_t n_columns,
                   uint16_t n_params)
{
    backend *b = c->be;
    cl_stmt *st = c->stmt;
    backend_unwatch(b);
    evtimer_del(c->timer);
    if (c->stmt_reprepare) {
        c->stmt_reprepare = false;
        c->rl_silent = false;
        if (!ok) {
            client_command_done(c); /* the backend's error went to the client */
            return;
        }
        st->backend_id = backend_id;
        st->be_serial = b->serial;
        send_stmt_command(c, st);
        return;
    }
    if (!ok) {
        stmt_free(st);
        c->stmt = NULL;
        client_command_done(c);
        return;
    }
    st->backend_id = backend_id;
    st->be_serial = b->serial;
    st->n_columns = n_columns;
    st->n_params = n_params;
    st->next = c->stmts;
    c->stmts = st;
    log_debug("conn %u: statement %u prepared as %u on backend thread %lu", c->id, st->id,
              backend_id, b->thread_id);
    client_command_done(c);
}
