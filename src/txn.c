/* txn.c: transactions follow the session. BEGIN / START TRANSACTION (and a SET TRANSACTION
 * before it) are held back until the first statement that touches data, and then begin on
 * the backend connection of that statement's environment: `BEGIN; USE shop@prod; SELECT`
 * runs in one transaction in prod, as it would on one server. Once a transaction has
 * touched data in an environment, a statement that touches data elsewhere (or USE of
 * another environment) is refused with ERR 1179 until COMMIT or ROLLBACK. With autocommit
 * off and no BEGIN, plain reads do not bind the session (each environment keeps its own
 * snapshot); a change of data does. */
#include "envproxy.h"
#include "log.h"
#include "rewrite.h"

#include <stdlib.h>
#include <string.h>

/* Longest statement held back (it is sent later through backend_query's buffer). */
#define TXN_TEXT_MAX (sizeof(((backend *)0)->op_text) - 1)

static void set_text(char **slot, const char *sql, size_t len)
{
    free(*slot);
    *slot = strndup(sql, len);
    if (!*slot)
        abort();
}

void txn_reset(client *c)
{
    free(c->txn_begin);
    free(c->txn_set);
    c->txn_begin = c->txn_set = NULL;
    c->txn_env = -1;
}

static uint16_t base_status(const client *c)
{
    return (uint16_t)(c->last_status & ST_AUTOCOMMIT);
}

/* Whether the session's environment is read-only for this account and the policy there
 * refuses sql (START TRANSACTION READ WRITE): such a statement is not held back. */
static bool session_read_only(client *c, const char *sql, size_t len)
{
    if (!c->env)
        return false;
    grant_level g;
    const cfg_env *e = route_env_for(c->p->cfg, c->acct, c->env->name, &g);
    if (!e || (e->access == ACCESS_READ_WRITE && g == GRANT_WRITE))
        return false;
    backend *held = client_held(c, env_index(c->p, e));
    sql_mode_flags mode = {0};
    if (held)
        mode = held->mode;
    policy_verdict v;
    return !sqlpolicy_check_readonly(sql, len, &mode, &v);
}

bool txn_is_control(const char *sql, size_t len)
{
    if (len > TXN_TEXT_MAX || !txn_may_be_control(sql, len))
        return false;
    sql_mode_flags mode = {0};
    txn_kind k = txn_classify(sql, len, &mode);
    return k == TXN_BEGIN || k == TXN_SET_NEXT || k == TXN_END;
}

bool txn_intercept(client *c, route_hint *h, const char *sql, size_t len)
{
    if (h->present || len > TXN_TEXT_MAX)
        return false;
    /* Read as the server's default reads it: these statements have no quotes to misread,
     * and anything else goes on as before. */
    sql_mode_flags mode = {0};
    return txn_intercept_kind(c, h, sql, len, (int)txn_classify(sql, len, &mode));
}

bool txn_intercept_kind(client *c, route_hint *h, const char *sql, size_t len, int kind)
{
    if (h->present || len > TXN_TEXT_MAX)
        return false;
    txn_kind k = (txn_kind)kind;
    if (c->txn_env >= 0) {
        /* A transaction runs on a backend already: the server answers. COMMIT, ROLLBACK
         * and BEGIN (which commits it) go to it wherever the session is now. */
        const cfg_env *e = proxy_slot_env(c->p, c->txn_env);
        if ((k == TXN_END || k == TXN_BEGIN) && e &&
            (!c->env || strcmp(c->env->name, e->name) != 0)) {
            h->present = true;
            h->n_envs = 1;
            route_copy_name(h->envs[0], sizeof(h->envs[0]), e->name);
        }
        return false;
    }
    if ((k == TXN_BEGIN || k == TXN_SET_NEXT) && session_read_only(c, sql, len))
        return false; /* refused where the session is, as it always was (client_check_policy) */
    switch (k) {
    case TXN_BEGIN:
        /* A second BEGIN replaces the first, as the server's implicit commit would. */
        set_text(&c->txn_begin, sql, len);
        client_send_ok(c, base_status(c) | ST_IN_TRANS);
        client_command_done(c);
        return true;
    case TXN_SET_NEXT:
        set_text(&c->txn_set, sql, len);
        client_send_ok(c, base_status(c) | (c->txn_begin ? ST_IN_TRANS : 0));
        client_command_done(c);
        return true;
    case TXN_END:
        if (!c->txn_begin && !c->txn_set)
            return false;
        /* Nothing reached a backend: there is nothing to end there. */
        free(c->txn_begin);
        free(c->txn_set);
        c->txn_begin = c->txn_set = NULL;
        client_send_ok(c, base_status(c));
        client_command_done(c);
        return true;
    default:
        return false;
    }
}

/* What the current command means to a transaction (TXN_DATA, TXN_READ: it runs inside one). */
static txn_kind command_kind(client *c, backend *b)
{
    if (c->job == JOB_QUERY && c->job_words)
        return (txn_kind)(c->job_words - 1); /* plain words read the same in every sql_mode */
    if (c->job == JOB_QUERY && c->cmd.len > 0 && c->cmd.data[0] == CMD_QUERY) {
        const char *sql = (const char *)c->cmd.data + 1;
        size_t len = c->cmd.len - 1;
        route_hint h;
        char err[64];
        if (route_parse_hint(sql, len, &h, err, sizeof(err)) == 0 && h.present) {
            sql += h.end;
            len -= h.end;
        }
        return txn_classify(sql, len, &b->mode);
    }
    if (c->job == JOB_STMT && c->cmd.len > 0 && c->cmd.data[0] == CMD_STMT_EXECUTE && c->stmt) {
        cl_stmt *st = c->stmt;
        const sql_mode_flags *m = &b->mode;
        if (!st->txn_known || st->txn_mode.ansi_quotes != m->ansi_quotes ||
            st->txn_mode.no_backslash_escapes != m->no_backslash_escapes ||
            st->txn_mode.unknown != m->unknown || st->txn_mode.unreadable != m->unreadable) {
            st->txn_kind = (int)txn_classify(st->sql, st->sql_len, m);
            st->txn_mode = *m;
            st->txn_known = true;
        }
        return (txn_kind)st->txn_kind;
    }
    return TXN_NO_DATA;
}

/* Whether the session may be inside a transaction (or about to begin one). */
static bool txn_possible(const client *c)
{
    return c->txn_env >= 0 || c->txn_begin || c->txn_set ||
           !(c->last_status & ST_AUTOCOMMIT);
}

static void txn_sent(backend *b, int rc, void *arg);

bool txn_ready(client *c, backend *b)
{
    int env = b->pool->index;
    c->txn_cmd = TXN_NO_DATA;
    if (!txn_possible(c))
        return true;
    c->txn_cmd = (int)command_kind(c, b);
    if (c->txn_cmd != TXN_DATA && c->txn_cmd != TXN_READ)
        return true;
    if (c->txn_env >= 0 && c->txn_env != env) {
        const char *open = proxy_slot_env(c->p, c->txn_env)->name;
        log_info("conn %u %s user=%s: refused: a transaction is open in env %s, statement for %s",
                 c->id, c->addr, c->user, open, b->pool->env->name);
        client_send_err(c, 1179, "25000",
                        "envproxy: a transaction that touched data is open in environment '%s': "
                        "COMMIT or ROLLBACK it before using environment '%s'",
                        open, b->pool->env->name);
        client_command_done(c);
        return false;
    }
    if (!c->txn_begin && !c->txn_set)
        return true;
    /* The held-back statements begin here, checked as any statement of this session. */
    char **slot = c->txn_set ? &c->txn_set : &c->txn_begin;
    if (!client_check_policy(c, b, *slot, strlen(*slot)))
        return false;
    backend_query(b, *slot, txn_sent, c);
    return false;
}

static void txn_sent(backend *b, int rc, void *arg)
{
    client *c = arg;
    bool began = c->txn_set == NULL; /* the BEGIN went, not the SET TRANSACTION */
    char **slot = c->txn_set ? &c->txn_set : &c->txn_begin;
    free(*slot);
    *slot = NULL;
    if (rc == 0 && began) {
        /* The connection is in a transaction now, whatever the statement does: it stays
         * with this session. */
        c->txn_env = b->pool->index;
        c->last_status |= ST_IN_TRANS;
    }
    if (rc != 0) {
        free(c->txn_begin); /* the client hears of the failure with its statement */
        c->txn_begin = NULL;
    }
    client_prepare_done(b, rc, arg);
}

uint16_t txn_status(client *c, backend *b, uint16_t status)
{
    int env = b->pool->index;
    if (status & ST_IN_TRANS) {
        /* With autocommit off, a plain read opens an implicit snapshot: each environment
         * keeps its own and the session may go on reading elsewhere (DB-API drivers run
         * with autocommit off). A change of data, or an explicit BEGIN, binds it. */
        if (c->txn_env == env || (status & ST_AUTOCOMMIT) || c->txn_cmd == TXN_DATA ||
            c->txn_cmd == TXN_BEGIN)
            c->txn_env = env;
    } else if (c->txn_env == env) {
        c->txn_env = -1;
    }
    if (c->txn_begin)
        status |= ST_IN_TRANS; /* the client's transaction has not begun anywhere yet */
    return status;
}

bool txn_may_move(client *c, const cfg_env *e)
{
    if (c->txn_env < 0 || env_index(c->p, e) == c->txn_env)
        return true;
    const char *open = proxy_slot_env(c->p, c->txn_env)->name;
    client_send_err(c, 1179, "25000",
                    "envproxy: a transaction that touched data is open in environment '%s': "
                    "COMMIT or ROLLBACK it before moving to environment '%s'",
                    open, e->name);
    client_command_done(c);
    return false;
}

void txn_backend_gone(client *c, backend *b)
{
    if (c->txn_env == b->pool->index)
        c->txn_env = -1;
}
