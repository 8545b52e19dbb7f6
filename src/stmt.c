/* stmt.c: server-side prepared statements (COM_STMT_*).
 *
 * Statement ids are the proxy's own. A client's statement runs as a backend statement of the
 * same text and database on whichever connection the session has at the time: each
 * connection keeps the statements prepared on it (be_stmt, shared by all clients, the least
 * recently used closed past BACKEND_MAX_STMTS), and one it lacks is prepared there first,
 * silently. EXECUTE packets that rely on parameter types sent earlier get them inserted when
 * the backend statement holds other types. The policy check and the choice of environment
 * happen at PREPARE; a read-only statement is checked again before it is prepared under
 * another sql_mode. */
#include "envproxy.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CURSOR_TYPE_MASK 0x0F
#define STMT_ID_LAST_PREPARED 0xFFFFFFFFu /* MariaDB: the statement prepared last */ /* the flags byte of COM_STMT_EXECUTE, low bits: cursor type */

/* The statements of a session are found by id through STMT_SLOTS slots (id modulo, ids
 * count up from 1), then the list: walking the list on every EXECUTE cost a cache miss per
 * statement passed once many sessions' statements no longer fit the caches (sysbench
 * read_only, 64 sessions of 22 statements: 4% of the proxy's time). */
#define STMT_SLOTS 64

static cl_stmt *stmt_find(client *c, uint32_t id)
{
    if (c->stmt_slots) {
        cl_stmt *st = c->stmt_slots[id % STMT_SLOTS];
        if (st && st->id == id)
            return st;
    }
    for (cl_stmt *st = c->stmts; st; st = st->next) {
        if (st->id == id) {
            if (c->stmt_slots)
                c->stmt_slots[id % STMT_SLOTS] = st;
            return st;
        }
    }
    return NULL;
}

static void stmt_free(cl_stmt *st)
{
    stmt_local_free(st);
    free(st->deferred_err);
    free(st->sql);
    free(st->param_types);
    pbuf_free(&st->params);
    pbuf_free(&st->columns);
    free(st);
}

static void stmt_unlink(client *c, cl_stmt *st)
{
    if (c->stmt_slots && c->stmt_slots[st->id % STMT_SLOTS] == st)
        c->stmt_slots[st->id % STMT_SLOTS] = NULL;
    for (cl_stmt **pp = &c->stmts; *pp; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            c->n_stmts--;
            c->stmt_bytes -= st->charged;
            return;
        }
    }
}

/* Refuses a new PREPARE (ERR 1461, as the server does at max_prepared_stmt_count) when the
 * session holds as many statements, or as many bytes of them, as it may; len is the new
 * text's. Returns false after answering. */
static bool stmt_room(client *c, size_t len)
{
    if (c->n_stmts >= CLIENT_MAX_STMTS) {
        client_send_err(c, 1461, "42000",
                        "Can't create more than max_prepared_stmt_count statements (current "
                        "value: %u): envproxy keeps at most %u per session; close some",
                        (unsigned)CLIENT_MAX_STMTS, (unsigned)CLIENT_MAX_STMTS);
        client_command_done(c);
        return false;
    }
    if (c->stmt_bytes + len > CLIENT_MAX_STMT_BYTES) {
        client_send_err(c, 1461, "42000",
                        "envproxy: the prepared statements of this session hold more than "
                        "%zu MiB; close some before preparing more",
                        CLIENT_MAX_STMT_BYTES >> 20);
        client_command_done(c);
        return false;
    }
    return true;
}

/* Long data for st waits on the connection (the session keeps it) or no longer does. */
static void stmt_note_long_data(client *c, cl_stmt *st, bool pending)
{
    if (st->long_data != pending)
        c->long_data_stmts += pending ? 1 : -1;
    st->long_data = pending;
}

void stmt_forget_long_data(client *c)
{
    for (cl_stmt *st = c->stmts; st; st = st->next)
        st->long_data = false;
    c->long_data_stmts = 0;
    c->exec_long_data = NULL;
}

/* The EXECUTE that used a statement's long data has its answer (or failed: the connection's
 * loss then reported the long data as lost state first): the data is used up. */
void stmt_exec_done(client *c)
{
    if (c->exec_long_data) {
        stmt_note_long_data(c, c->exec_long_data, false);
        c->exec_long_data = NULL;
    }
}

void stmt_relay_failed(client *c)
{
    if (c->job == JOB_PREPARE && c->stmt) {
        stmt_free(c->stmt); /* not registered yet: the backend never said OK */
        c->stmt = NULL;
    }
    c->stmt_reprepare = false;
    c->rl_silent = false;
}

void stmt_drop_pending(client *c)
{
    /* A PREPARE on its way (waiting for a connection, for the session's setup or for the
     * backend's answer) holds its statement in c->stmt alone: it is registered only at the
     * backend's OK. The EXECUTE that prepares again (stmt_reprepare) runs a registered one. */
    if (!c->stmt || c->job != JOB_PREPARE)
        return;
    bool registered = false;
    for (cl_stmt *st = c->stmts; st && !registered; st = st->next)
        registered = st == c->stmt;
    if (!registered)
        stmt_free(c->stmt);
    c->stmt = NULL;
}

void stmt_free_all(client *c)
{
    stmt_drop_pending(c);
    while (c->stmts) {
        cl_stmt *st = c->stmts;
        c->stmts = st->next;
        stmt_free(st);
    }
    free(c->stmt_slots);
    c->stmt_slots = NULL;
    c->n_stmts = 0;
    c->stmt_bytes = 0;
    c->stmt = NULL;
    c->long_data_stmts = 0;
    c->exec_long_data = NULL;
}

/* ---- the statements of a backend connection ---- */

static uint32_t text_hash(const char *sql, size_t len, const char *db)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)sql[i]) * 16777619u;
    h = (h ^ 0xFFu) * 16777619u; /* never a byte of a database name */
    for (; *db; db++)
        h = (h ^ (uint8_t)*db) * 16777619u;
    return h;
}

static void be_stmt_free(be_stmt *e)
{
    free(e->sql);
    free(e->types);
    pbuf_free(&e->params);
    pbuf_free(&e->columns);
    pbuf_free(&e->result_columns);
    free(e);
}

/* A backend's statements are found through BE_STMT_SLOTS slots by the hash of their text
 * first, then the list (most recently used first, the least evicted at BACKEND_MAX_STMTS):
 * a session that moved to another connection looked through the list by text on every
 * EXECUTE, a cache miss per statement passed with many connections (sysbench read_only, 64
 * sessions: 1.6% of the proxy's time). */
#define BE_STMT_SLOTS 64

static void be_unlink(backend *b, be_stmt *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        b->stmts = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->next = e->prev = NULL;
    if (b->stmt_slots && b->stmt_slots[e->hash % BE_STMT_SLOTS] == e)
        b->stmt_slots[e->hash % BE_STMT_SLOTS] = NULL;
}

/* e at the front of b's list, and in its slot. */
static void be_front(backend *b, be_stmt *e)
{
    e->prev = NULL;
    e->next = b->stmts;
    if (b->stmts)
        b->stmts->prev = e;
    b->stmts = e;
    if (!b->stmt_slots)
        b->stmt_slots = calloc(BE_STMT_SLOTS, sizeof(*b->stmt_slots)); /* NULL: the list alone */
    if (b->stmt_slots)
        b->stmt_slots[e->hash % BE_STMT_SLOTS] = e;
}

void stmt_cache_clear(backend *b)
{
    while (b->stmts) {
        be_stmt *e = b->stmts;
        b->stmts = e->next;
        be_stmt_free(e);
    }
    free(b->stmt_slots);
    b->stmt_slots = NULL;
    b->n_stmts = 0;
}

static bool same_text(const be_stmt *e, const cl_stmt *st)
{
    return e->hash == st->hash && e->sql_len == st->sql_len &&
           memcmp(e->sql, st->sql, st->sql_len) == 0 &&
           strcmp(e->db, st->has_db ? st->db : "") == 0;
}

/* Whether st may run as e, a statement of b of the same text: prepared while b read SQL as it
 * does now (and, for a read-only statement, in the sql_mode its check was made with). */
static bool runs_as(const backend *b, const be_stmt *e, const cl_stmt *st)
{
    return e->epoch == b->parse_epoch && same_text(e, st) &&
           (!st->read_only || memcmp(&e->mode, &st->mode, sizeof(e->mode)) == 0);
}

/* The backend statement of b that st runs as, made the most recently used; NULL when b has
 * none. The one st last ran as, or one of the same text prepared while b read SQL as it does
 * now (and, for a read-only statement, in the sql_mode its check was made with). */
static be_stmt *cache_find(backend *b, cl_stmt *st)
{
    be_stmt *found = NULL;
    be_stmt *slot = b->stmt_slots ? b->stmt_slots[st->hash % BE_STMT_SLOTS] : NULL;
    if (st->be_serial == b->serial) {
        if (slot && slot->uid == st->be_uid) {
            found = slot;
        } else {
            for (be_stmt *e = b->stmts; e; e = e->next) {
                if (e->uid == st->be_uid) {
                    found = e;
                    break;
                }
            }
        }
    }
    if (!found && slot && runs_as(b, slot, st))
        found = slot;
    for (be_stmt *e = b->stmts; !found && e; e = e->next)
        if (runs_as(b, e, st))
            found = e;
    if (!found)
        return NULL;
    be_unlink(b, found);
    be_front(b, found);
    st->be_serial = b->serial;
    st->be_uid = found->uid;
    return found;
}

/* Records st's text, just prepared on b (as st->backend_id, in st->mode), with the response
 * (st->params, st->columns). */
static be_stmt *cache_add(backend *b, cl_stmt *st)
{
    if (b->n_stmts >= BACKEND_MAX_STMTS) {
        be_stmt *old = b->stmts;
        while (old->next)
            old = old->next;
        be_unlink(b, old);
        b->n_stmts--;
        /* COM_STMT_CLOSE has no reply: it goes ahead of the next command. */
        uint8_t pkt[9] = {5, 0, 0, 0, CMD_STMT_CLOSE};
        pkt_put_u32(pkt + 5, old->backend_id);
        evbuffer_add(b->out, pkt, sizeof(pkt));
        be_stmt_free(old);
    }
    be_stmt *e = calloc(1, sizeof(*e));
    if (!e)
        abort();
    e->uid = ++b->next_stmt_uid;
    e->backend_id = st->backend_id;
    e->hash = st->hash;
    e->epoch = b->parse_epoch;
    e->mode = st->mode;
    e->sql = malloc(st->sql_len ? st->sql_len : 1);
    if (!e->sql)
        abort();
    memcpy(e->sql, st->sql, st->sql_len);
    e->sql_len = st->sql_len;
    snprintf(e->db, sizeof(e->db), "%s", st->has_db ? st->db : "");
    e->n_params = st->n_params;
    e->n_columns = st->n_columns;
    e->warnings = st->prep_warnings;
    pbuf_init(&e->params);
    pbuf_init(&e->columns);
    pbuf_init(&e->result_columns);
    pbuf_put(&e->params, st->params.data, st->params.len);
    pbuf_put(&e->columns, st->columns.data, st->columns.len);
    pbuf_put(&e->result_columns, st->columns.data, st->columns.len);
    e->n_result_columns = st->n_columns;
    /* Kept by e now; the client's statement needs them no more. */
    pbuf_free(&st->params);
    pbuf_free(&st->columns);
    be_front(b, e);
    b->n_stmts++;
    st->be_serial = b->serial;
    st->be_uid = e->uid;
    return e;
}

/* ---- client commands ---- */

/* True when the text's first statement is USE: the server cannot prepare it (1295), and
 * drivers take that error as the signal to send the statement as a plain query. */
static bool is_use_statement(const char *sql, size_t len)
{
    sql_lexer lx;
    sqllex_init(&lx, sql, len, NULL);
    sql_token t = sqllex_next(&lx);
    return sqllex_is_word(sql, t, "USE");
}

static void handle_prepare(client *c)
{
    const char *sql = (const char *)c->cmd.data + 1;
    size_t len = c->cmd.len - 1;
    route_hint h;
    /* MariaDB's "the statement prepared last" (id 0xFFFFFFFF) names nothing until this
     * PREPARE succeeds: a failed one leaves later EXECUTEs of that id unknown. */
    c->last_prepared_id = 0;
    if (!stmt_room(c, len))
        return;
    if (is_use_statement(sql, len)) {
        client_send_err(c, 1295, "HY000",
                        "This command is not supported in the prepared statement protocol yet");
        client_command_done(c);
        return;
    }
    if (!client_parse_hint(c, sql, len, &h))
        return;
    if (!client_rewrite_schemas(c, &h)) /* `shop@prod`.t, TABLE_SCHEMA = 'shop@prod' */
        return;
    sql = (const char *)c->cmd.data + 1;
    len = c->cmd.len - 1;
    if (h.present && (h.all_envs || h.n_envs > 1 || h.n_compare)) {
        client_send_err(c, 1235, "42000",
                        "envproxy: a prepared statement runs in one environment; env=a,b, "
                        "env=* and compare= are for plain statements");
        client_command_done(c);
        return;
    }
    if (local_takes(sql + h.end, len - h.end) || virtual_takes(c, &h, sql, len) ||
        (!h.present && txn_is_control(sql + h.end, len - h.end))) {
        stmt_local_prepare(c, sql, len);
        return;
    }
    if (!client_rewrite_users(c, &h)) /* SELECT USER(), x: the envproxy account */
        return;
    sql = (const char *)c->cmd.data + 1;
    len = c->cmd.len - 1;
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
    st->moves_session = c->job_moves_session;
    st->sql = malloc(len ? len : 1);
    if (!st->sql)
        abort();
    memcpy(st->sql, sql, len);
    st->sql_len = len;
    st->hash = text_hash(st->sql, len, st->has_db ? st->db : "");
    pbuf_init(&st->params);
    pbuf_init(&st->columns);
    sql_mode_flags every = {.unknown = true};
    st->sets_tracking = session_sets_tracking(sql, len, &every);
    st->changes_mode = session_may_set(sql, len); /* an EXECUTE that fails: read sql_mode */
    c->stmt = st; /* registered when the backend says OK */
    c->job = JOB_PREPARE;
    client_start_job(c);
}

/* Puts c->route back to where the statement was prepared. Returns false (error sent) when
 * the account lost its grant meanwhile. */
static bool route_for_stmt(client *c, cl_stmt *st)
{
    const cfg_env *e = proxy_slot_env(c->p, st->env);
    /* route_env_for reads the configuration and the account alone: its answer is kept until
     * either changes (a reload makes a new generation; the account store, a new acct_gen;
     * COM_CHANGE_USER, another account). */
    if (!st->grant_known || st->grant_cfg_gen != c->cfg->generation ||
        st->grant_acct_gen != c->acct_gen || st->grant_acct != c->acct) {
        st->grant_ok = route_env_for(c->cfg, c->acct, e->name, &st->grant) != NULL;
        st->grant_cfg_gen = c->cfg->generation;
        st->grant_acct_gen = c->acct_gen;
        st->grant_acct = c->acct;
        st->grant_known = true;
    }
    grant_level g = st->grant;
    if (!st->grant_ok) {
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
        c->job_db_len = (uint16_t)route_copy_name(c->job_db, sizeof(c->job_db), st->db);
    c->job_moves_session = st->moves_session;
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
    if (id == STMT_ID_LAST_PREPARED && c->last_prepared_id) {
        /* MariaDB connectors pipeline PREPARE and EXECUTE this way: the id means the
         * statement this session prepared last. */
        id = c->last_prepared_id;
        pkt_put_u32(c->cmd.data + 1, id);
    }
    cl_stmt *st = stmt_find(c, id);
    if (cmd == CMD_STMT_CLOSE) {
        /* The backend statement stays for other sessions (it goes when its connection has
         * too many). */
        if (st) {
            stmt_note_long_data(c, st, false);
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
    if (st->deferred_err && (cmd == CMD_STMT_EXECUTE || cmd == CMD_STMT_RESET)) {
        /* An earlier SEND_LONG_DATA failed: EXECUTE reports it instead of running without
         * the data; RESET forgets it. Either way the long data is gone. */
        if (cmd == CMD_STMT_EXECUTE) {
            pbuf out;
            pbuf_init(&out);
            size_t start = pkt_begin(&out);
            pbuf_put(&out, st->deferred_err, st->deferred_err_len);
            pkt_end(&out, start, &c->seq);
            client_send(c, &out);
        }
        free(st->deferred_err);
        st->deferred_err = NULL;
        st->deferred_err_len = 0;
        stmt_note_long_data(c, st, false);
        if (cmd == CMD_STMT_EXECUTE) {
            client_command_done(c);
            return;
        }
    }
    if (st->local && cmd != CMD_STMT_FETCH) {
        if (cmd == CMD_STMT_EXECUTE) {
            stmt_local_execute(c, st);
        } else if (cmd == CMD_STMT_SEND_LONG_DATA) {
            stmt_local_long_data(c, st); /* no reply, as the protocol says */
            client_command_done(c);
        } else {
            stmt_local_reset(st); /* COM_STMT_RESET */
            client_send_ok(c, c->last_status ? c->last_status : ST_AUTOCOMMIT);
            client_command_done(c);
        }
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
        client_send_ok(c, ST_AUTOCOMMIT);
        client_command_done(c);
        return;
    }
    if (cmd == CMD_STMT_SEND_LONG_DATA) {
        c->no_reply = true;
        c->no_reply_stmt = st;
    }
    if (!route_for_stmt(c, st))
        return;
    c->stmt = st;
    c->job = JOB_STMT;
    client_start_job(c);
}

void stmt_defer_error(client *c, const uint8_t *p, size_t len)
{
    cl_stmt *st = c->no_reply_stmt;
    if (!st || st->deferred_err || len == 0 || p[0] != 0xFF)
        return; /* the first error counts */
    if (!(st->deferred_err = malloc(len)))
        abort();
    memcpy(st->deferred_err, p, len);
    st->deferred_err_len = len;
    size_t msg_at = len >= 9 && p[3] == '#' ? 9 : 3; /* code, then '#' and the SQLSTATE */
    log_info("conn %u %s user=%s: long data for statement %u was not delivered (%.*s); its "
             "next EXECUTE gets this error",
             c->id, c->addr, c->user, st->id, (int)(len > msg_at ? len - msg_at : 0),
             (const char *)p + msg_at);
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

/* The client's EXECUTE / RESET / SEND_LONG_DATA packet for backend statement e: its id, no
 * cursor, and the parameter types when e holds other ones than the client last sent. Returns
 * -1 (error sent) when the packet is malformed. */
static int build_stmt_packet(client *c, cl_stmt *st, be_stmt *e, pbuf *out)
{
    const uint8_t *p = c->cmd.data;
    size_t len = c->cmd.len;
    uint8_t cmd = p[0];
    pbuf_put(out, p, len);
    pkt_put_u32(out->data + 1, e->backend_id);
    if (cmd != CMD_STMT_EXECUTE)
        return 0;
    if (len < 10) {
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        return -1;
    }
    out->data[5] &= (uint8_t)~CURSOR_TYPE_MASK; /* no cursors: rows come with the result */
    if (st->n_params == 0)
        return 0;
    size_t types_len = 2 * (size_t)st->n_params;
    size_t nb = ((size_t)st->n_params + 7) / 8;
    size_t bound_at = 10 + nb;
    if (len < bound_at + 1) {
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        return -1;
    }
    if (p[bound_at] > 1) {
        /* The server takes 0 and 1 only (1835 for any other): refused here, before the types
         * of another EXECUTE could be put in front of a packet the server would refuse. */
        client_send_err(c, 1835, "HY000", "Malformed communication packet");
        return -1;
    }
    if (p[bound_at] == 1) {
        if (len < bound_at + 1 + types_len) {
            client_send_err(c, 1835, "HY000", "Malformed communication packet");
            return -1;
        }
        if (!st->param_types && !(st->param_types = malloc(types_len)))
            abort();
        memcpy(st->param_types, p + bound_at + 1, types_len);
    } else if (!st->param_types) {
        client_send_err(c, 1210, "HY000",
                        "Incorrect arguments to mysqld_stmt_execute: no parameter types were "
                        "ever sent for statement %u",
                        st->id);
        return -1;
    } else if (!e->types || memcmp(e->types, st->param_types, types_len) != 0) {
        /* Insert the client's types after new_params_bound_flag, now 1. */
        out->len = bound_at;
        pbuf_u8(out, 1);
        pbuf_put(out, st->param_types, types_len);
        pbuf_put(out, p + bound_at + 1, len - bound_at - 1);
    }
    if (e->n_params != st->n_params)
        return 0; /* cannot happen: the same text has the same parameters */
    if (!e->types && !(e->types = malloc(types_len)))
        abort();
    memcpy(e->types, st->param_types, types_len);
    return 0;
}

/* Writes what COM_STMT_SEND_LONG_DATA left in the backend's output; the command ends once
 * it is all written (or the connection broke and was dropped: EXECUTE then fails there, or
 * runs on another connection without the data and the server reports missing data). */
static void long_data_cb(evutil_socket_t fd, short what, void *arg);

/* The connection holding long data broke: it is kept, closed, so that the next command
 * finds it dead and tells the client that its long data is gone (client_lose_backend),
 * instead of running without it. */
static void long_data_lost(client *c)
{
    backend_unwatch(c->be);
    if (c->be->fd >= 0)
        shutdown(c->be->fd, SHUT_RDWR);
    client_command_done(c);
}

static void long_data_flush(client *c)
{
    backend *b = c->be;
    if (backend_flush(b) < 0) {
        long_data_lost(c);
        return;
    }
    if (evbuffer_get_length(b->out) > 0) {
        backend_watch(b, long_data_cb, c); /* with EV_WRITE while b->out holds bytes */
        return;
    }
    backend_park(b);
    client_command_done(c);
}

static void long_data_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    client *c = arg;
    if (what & EV_READ) {
        /* The server answers nothing to long data: this is an error before it closes. */
        long_data_lost(c);
        return;
    }
    long_data_flush(c);
}

/* Sends the client's statement command to the backend where st is prepared. */
static void send_stmt_command(client *c, cl_stmt *st, be_stmt *e)
{
    uint8_t out_room[512];
    pbuf out;
    pbuf_init_on(&out, out_room, sizeof(out_room));
    if (build_stmt_packet(c, st, e, &out)) {
        pbuf_free(&out);
        client_command_done(c);
        return;
    }
    uint8_t cmd = c->cmd.data[0];
    if (cmd == CMD_STMT_EXECUTE && st->long_data)
        c->exec_long_data = st; /* used up once the server answers: until then, state */
    else
        stmt_note_long_data(c, st, cmd == CMD_STMT_SEND_LONG_DATA);
    if (cmd == CMD_STMT_SEND_LONG_DATA) {
        /* No reply: write it and go on; the session keeps this connection until EXECUTE.
         * The client's next command waits until the whole packet is on the wire, so that
         * no more than one of them is held in memory. */
        relay_queue_command(c->be, out.data, out.len);
        pbuf_free(&out);
        long_data_flush(c);
        return;
    }
    c->stmt_be = e;
    relay_send(c, RL_FIRST, out.data, out.len);
    pbuf_free(&out);
}

/* The client character set b reads SQL in, as the policy reads it; SQL_CS_UNSUPPORTED when
 * an earlier packet set one the server has not confirmed. */
static sql_charset stmt_text_cs(backend *b)
{
    policy_session ps;
    backend_policy_session(b, &ps);
    if (b->text_cs_known && b->text_cs != ps.charset)
        return SQL_CS_UNSUPPORTED;
    return ps.charset;
}

/* The policy check of a statement's text, at PREPARE. Preparing runs nothing: the session's
 * sql_mode stays as it is even when the text sets it (that is seen when it executes). */
static bool check_text(client *c, backend *b, cl_stmt *st)
{
    sql_mode_flags mode = b->mode;
    bool ok = client_check_policy(c, b, st->sql, st->sql_len);
    if (ok) {
        b->mode = mode;
        c->job_mode_changed = false;
    }
    return ok;
}

void stmt_register(client *c, cl_stmt *st)
{
    st->next = c->stmts;
    c->stmts = st;
    if (!c->stmt_slots)
        c->stmt_slots = calloc(STMT_SLOTS, sizeof(*c->stmt_slots)); /* NULL: the list alone */
    if (c->stmt_slots)
        c->stmt_slots[st->id % STMT_SLOTS] = st;
    st->charged = sizeof(*st) + st->sql_len + st->params.cap + st->columns.cap;
    c->n_stmts++;
    c->stmt_bytes += st->charged;
    c->last_prepared_id = st->id;
}

/* Answers the client's PREPARE from backend statement e, which has the same text. */
static void answer_prepare(client *c, cl_stmt *st, be_stmt *e)
{
    uint16_t status = c->last_status ? c->last_status : ST_AUTOCOMMIT;
    uint8_t out_room[512];
    pbuf out;
    pbuf_init_on(&out, out_room, sizeof(out_room));
    size_t start = pkt_begin(&out);
    pbuf_u8(&out, 0x00);
    pbuf_u32(&out, st->id);
    pbuf_u16(&out, e->n_columns);
    pbuf_u16(&out, e->n_params);
    pbuf_u8(&out, 0x00);
    pbuf_u16(&out, e->warnings);
    pkt_end(&out, start, &c->seq);
    if (e->n_params > 0) {
        /* Kept in the backend's format; the client may want the other. */
        pkt_append_columns(&out, &e->params, &c->seq, c->be->ext_metadata, c->ext_meta);
        if (!(c->caps & CAP_DEPRECATE_EOF))
            pkt_build_eof(&out, &c->seq, c->caps, 0, status);
    }
    if (e->n_columns > 0) {
        pkt_append_columns(&out, &e->columns, &c->seq, c->be->ext_metadata, c->ext_meta);
        if (!(c->caps & CAP_DEPRECATE_EOF))
            pkt_build_eof(&out, &c->seq, c->caps, 0, status);
    }
    client_send(c, &out);
    st->n_params = e->n_params;
    st->n_columns = e->n_columns;
    stmt_register(c, st);
    c->stmt = NULL;
    log_debug("conn %u: statement %u answered from backend statement %u on thread %lu", c->id,
              st->id, e->backend_id, c->be->thread_id);
    client_command_done(c);
}

void stmt_run(client *c)
{
    backend *b = c->be;
    cl_stmt *st = c->stmt;
    if (c->job == JOB_PREPARE) {
        st->mode = b->mode;
        st->cs = stmt_text_cs(b);
        if (!check_text(c, b, st))
            return; /* the refusal ended the command, which freed st (stmt_drop_pending) */
        be_stmt *e = cache_find(b, st);
        if (e) {
            answer_prepare(c, st, e);
            return;
        }
        c->rl_silent = false;
        c->stmt_reprepare = false;
        relay_start(c, RL_PREP_OK);
        return;
    }
    if (c->route.read_only && !st->read_only && c->cmd.data[0] == CMD_STMT_EXECUTE) {
        /* Prepared while the route could write; the account's grant or the environment is
         * read-only now (a reload): the text is checked as a read-only statement before it
         * runs again, and from now on as one. Not at SEND_LONG_DATA, which runs nothing and
         * has no reply to carry a refusal; RESET runs nothing either. */
        st->mode = b->mode;
        st->cs = stmt_text_cs(b);
        if (!check_text(c, b, st))
            return;
        st->read_only = true;
    }
    be_stmt *e = cache_find(b, st);
    if (e) {
        send_stmt_command(c, st, e);
        return;
    }
    sql_charset cs = stmt_text_cs(b);
    if (st->read_only &&
        (memcmp(&st->mode, &b->mode, sizeof(b->mode)) != 0 || cs != st->cs) &&
        !check_text(c, b, st))
        return; /* this connection reads SQL in another sql_mode or character set than the
                   check did */
    st->mode = b->mode; /* the mode and character set it is prepared in, next */
    st->cs = cs;
    reprepare(c, st);
}

void stmt_prepared(client *c, bool ok)
{
    backend *b = c->be;
    cl_stmt *st = c->stmt;
    backend_park(b);
    c->rl_deadline_ms = 0; /* the PREPARE's: the deadline watch finds none */
    if (c->stmt_reprepare) {
        c->stmt_reprepare = false;
        c->rl_silent = false;
        if (!ok) {
            client_command_done(c); /* the backend's error went to the client */
            return;
        }
        be_stmt *e = cache_add(b, st);
        send_stmt_command(c, st, e);
        return;
    }
    if (!ok) {
        stmt_free(st);
        c->stmt = NULL;
        client_command_done(c);
        return;
    }
    cache_add(b, st);
    stmt_register(c, st);
    log_debug("conn %u: statement %u prepared as %u on backend thread %lu", c->id, st->id,
              st->backend_id, b->thread_id);
    if (evbuffer_get_length(b->out) > 0 && backend_flush(b) < 0)
        client_drop_backend(c, b); /* the statement is prepared again where it next runs */
    client_command_done(c);
}
